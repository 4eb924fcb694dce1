package tether

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	nbtls "github.com/lesismal/llib/std/crypto/tls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/tetherhq/tether/internal/grpcconn"
	"github.com/tetherhq/tether/internal/tcpconn"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
)

// tcpKeepAlive is the TCP keepalive idle time of TCP transport connections.
const tcpKeepAlive = 30 * time.Second

// transports are the listeners besides HTTP: raw TCP and gRPC.
type transports struct {
	tcp   *tcpconn.Server
	tcpLn net.Listener

	grpc        *grpc.Server
	grpcStreams *grpcconn.Server
	health      *health.Server
	grpcLn      net.Listener

	wg sync.WaitGroup
}

// listen opens every listener the config asks for: HTTP, TCP and gRPC. On
// error it closes those it opened.
func (n *Node) listen() error {
	var httpLn net.Listener
	for _, l := range []struct {
		addr, what string
		ln         *net.Listener
	}{
		{n.cfg.HTTPAddr, "listen", &httpLn},
		{n.cfg.TCPAddr, "listen tcp", &n.tr.tcpLn},
		{n.cfg.GRPCAddr, "listen grpc", &n.tr.grpcLn},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			n.closeListeners()
			return fmt.Errorf("tether: %s: %w", l.what, err)
		}
		*l.ln = ln
		if l.ln == &httpLn {
			n.ln = newListener(ln) // nbio's accept loop runs on it: see listener.go
		}
	}
	return nil
}

// closeListeners closes every listener listen opened.
func (n *Node) closeListeners() {
	if n.ln != nil {
		_ = n.ln.Close()
	}
	for _, ln := range []net.Listener{n.tr.tcpLn, n.tr.grpcLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// startTransports serves TCP and gRPC on the listeners listen opened.
func (n *Node) startTransports() error {
	t := &n.tr
	if t.tcpLn != nil {
		srv, err := tcpconn.New(tcpconn.Config{
			Sessions:      n.sessions,
			Conns:         n.conns,
			TLS:           n.tlsNB(),
			MaxLineLength: n.cfg.MaxMessageSize,
			MaxOutbound:   n.cfg.MaxOutbound,
			CloseTimeout:  n.cfg.CloseTimeout,
			KeepAlive:     tcpKeepAlive,
			Logger:        n.log,
		})
		if err != nil {
			return err
		}
		t.tcp = srv
		ln := t.tcpLn
		t.wg.Add(1)
		go func() { defer t.wg.Done(); _ = srv.Serve(ln) }()
		n.log.Info("listening", "transport", "tcp", "addr", ln.Addr().String(), "tls", n.tls != nil)
	}
	if t.grpcLn != nil {
		opts := []grpc.ServerOption{
			grpc.MaxRecvMsgSize(n.cfg.MaxMessageSize + 1024), // room for the message's own fields
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: n.cfg.PingInterval, Timeout: n.cfg.PongTimeout}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
			grpc.ChainUnaryInterceptor(n.api.UnaryInterceptor),
			grpc.ChainStreamInterceptor(n.api.StreamInterceptor),
		}
		if n.tls != nil {
			opts = append(opts, grpc.Creds(credentials.NewTLS(n.tls.std)))
		}
		t.grpc = grpc.NewServer(opts...)
		t.grpcStreams = grpcconn.New(grpcconn.Config{
			Sessions:     n.sessions,
			Conns:        n.conns,
			MaxOutbound:  n.cfg.MaxOutbound,
			CloseTimeout: n.cfg.CloseTimeout,
			Logger:       n.log,
		})
		tetherv1.RegisterTetherServer(t.grpc, t.grpcStreams)
		n.api.RegisterGRPC(t.grpc)
		t.health = health.NewServer()
		healthpb.RegisterHealthServer(t.grpc, t.health)
		reflection.Register(t.grpc)
		ln := t.grpcLn
		t.wg.Add(1)
		go func() { defer t.wg.Done(); _ = t.grpc.Serve(ln) }()
		n.log.Info("listening", "transport", "grpc", "addr", ln.Addr().String(), "tls", n.tls != nil)
	}
	return nil
}

// tlsNB returns the TLS config of nbio's listeners, or nil.
func (n *Node) tlsNB() *nbtls.Config {
	if n.tls == nil {
		return nil
	}
	return n.tls.nb
}

// TCPAddr returns the address of the TCP transport, or nil without TCPAddr.
func (n *Node) TCPAddr() net.Addr {
	if n.tr.tcpLn == nil {
		return nil
	}
	return n.tr.tcpLn.Addr()
}

// GRPCAddr returns the address of the gRPC listener, or nil without GRPCAddr.
func (n *Node) GRPCAddr() net.Addr {
	if n.tr.grpcLn == nil {
		return nil
	}
	return n.tr.grpcLn.Addr()
}

// closeTransportListeners stops accepting TCP connections and gRPC streams.
func (n *Node) closeTransportListeners() {
	t := &n.tr
	if t.tcpLn != nil {
		_ = t.tcpLn.Close()
	}
	if t.health != nil {
		t.health.Shutdown() // load balancers: NOT_SERVING from here on
	}
}

// stopGRPC stops the gRPC server once its streams are drained: gracefully,
// letting server API calls in flight finish, until ctx ends.
func (n *Node) stopGRPC(ctx context.Context) {
	g := n.tr.grpc
	if g == nil {
		return
	}
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		g.Stop()
		<-done
	}
}

// stopTransports drops whatever the transports still hold; for New's failures
// and the end of Shutdown. It waits for the TCP event loop 5s at most, and
// past ctx's end only briefly.
func (n *Node) stopTransports(ctx context.Context) {
	t := &n.tr
	if t.tcpLn != nil {
		_ = t.tcpLn.Close()
	}
	if t.tcp != nil {
		t.tcp.Stop(ctx)
	}
	if t.grpc != nil {
		t.grpc.Stop()
	}
	t.wg.Wait()
}

// transportConns returns the open TCP connections and gRPC streams.
func (n *Node) transportConns() (tcp, grpcStreams int) {
	if n.tr.tcp != nil {
		tcp = n.tr.tcp.Len()
	}
	if n.tr.grpcStreams != nil {
		grpcStreams = n.tr.grpcStreams.Len()
	}
	return tcp, grpcStreams
}
