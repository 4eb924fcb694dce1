// Package grpcconn serves tether's protocol over a gRPC bidirectional stream,
// tether.v1.Tether/Connect: each stream message carries one command or one
// reply or push, as the JSON of the WebSocket endpoint, run by the same session
// code. It queues outbound messages with a byte limit per stream and closes
// slow consumers as the other transports do.
//
// gRPC runs a goroutine per stream; this package adds a sender and a receiver
// per stream, so that a stream blocked on a slow client can still be ended.
// Dead peers are found by HTTP/2 keepalive, configured on the grpc.Server.
// Admission (the connection limit, refusals while draining) and draining at
// shutdown are package conns's, shared with the other transports. The package
// must not interpret commands (package session does) and does not own the
// grpc.Server or its listener.
package grpcconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/session"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// Config configures a Server.
type Config struct {
	// Sessions opens a session for each stream.
	Sessions *session.Manager
	// Conns admits, registers and drains the streams, with the other
	// transports' connections (MaxConns counts them all): past the limit a
	// stream ends with RESOURCE_EXHAUSTED, while draining with UNAVAILABLE.
	// Required.
	Conns *conns.Registry
	// MaxOutbound is the most bytes queued for one stream; past it the stream
	// is closed as a slow consumer.
	MaxOutbound int
	// CloseTimeout is how long a closing stream may take to send its final
	// disconnect message before it is ended anyway.
	CloseTimeout time.Duration
	// Logger receives stream events.
	Logger *slog.Logger
}

// Server implements tetherv1.TetherServer. Its methods are safe for concurrent
// use.
type Server struct {
	tetherv1.UnimplementedTetherServer

	cfg      Config
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
}

var _ tetherv1.TetherServer = (*Server)(nil)

// Stats are a Server's traffic counters since it started.
type Stats struct {
	BytesIn  int64 // bytes of the JSON messages received
	BytesOut int64 // bytes of the JSON messages sent (gRPC and HTTP/2 framing not counted)
}

// Stats returns the server's traffic counters.
func (s *Server) Stats() Stats {
	return Stats{BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
}

// New returns a server; register it with tetherv1.RegisterTetherServer.
func New(cfg Config) *Server {
	return &Server{cfg: cfg}
}

// Connect implements tetherv1.TetherServer: it runs one session on stream.
func (s *Server) Connect(stream tetherv1.Tether_ConnectServer) error {
	p := peerOf(stream.Context())
	ip := conns.IP(p.RemoteAddr)
	if err := s.cfg.Conns.AdmitFrom(conns.GRPC, ip); err != nil {
		switch {
		case errors.Is(err, conns.ErrDraining):
			return status.Error(codes.Unavailable, "server shutting down")
		case errors.Is(err, conns.ErrTooManyFromIP):
			return status.Error(codes.ResourceExhausted, "too many connections from your address")
		}
		return status.Error(codes.ResourceExhausted, "too many connections")
	}
	c := &conn{
		srv:     s,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
		dropped: make(chan struct{}),
	}
	c.sess = s.cfg.Sessions.OpenPeer(c, p)
	defer s.closed(c)
	if err := s.cfg.Conns.AddFrom(conns.GRPC, c, ip); err != nil { // draining began meanwhile
		c.Close(protocol.DisconnectShutdown)
	}

	quit := make(chan struct{})
	defer close(quit)
	sent := make(chan error, 1)
	go func() { sent <- c.sendLoop(stream, quit) }()
	received := make(chan error, 1)
	go func() { received <- c.recvLoop(stream) }()

	for {
		select {
		case err := <-sent: // the final message went out, or sending failed
			if err != nil {
				return err
			}
			return c.status()
		case err := <-received:
			if errors.Is(err, io.EOF) {
				// The client is done sending (half-close): it may still be
				// listening, so the stream stays open for pushes.
				received = nil
				continue
			}
			return err
		case <-c.closing:
			// Give the final message CloseTimeout to leave; a slow consumer's
			// stream may be stuck on flow control, and ending the handler is
			// what unblocks it.
			t := time.NewTimer(s.cfg.CloseTimeout)
			defer t.Stop()
			select {
			case err := <-sent:
				if err != nil {
					return err
				}
			case <-t.C:
			case <-c.dropped:
				return errDropped
			case <-stream.Context().Done():
			}
			return c.status()
		case <-c.dropped:
			return errDropped
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

// errDropped ends a stream that Drop ended, without a disconnect message.
var errDropped = status.Error(codes.Unavailable, "server shutting down")

// closed forgets c once its handler returns. It removes c from the registry
// last, so that a drained registry means closed sessions.
func (s *Server) closed(c *conn) {
	c.markClosed()
	c.sess.Closed()
	s.cfg.Conns.Remove(c)
}

// Len returns the number of open streams, counting those being set up.
func (s *Server) Len() int { return s.cfg.Conns.Count(conns.GRPC) }

// peerOf describes a stream's peer: its address, and its metadata as
// headers (a token may come as "authorization: Bearer ...").
func peerOf(ctx context.Context) session.Peer {
	p := session.Peer{Transport: "grpc"}
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p.RemoteAddr = pr.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		p.Header = make(http.Header, len(md))
		for k, v := range md {
			p.Header[http.CanonicalHeaderKey(k)] = v
		}
	}
	return p
}
