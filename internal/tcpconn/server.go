// Package tcpconn serves tether's protocol over raw TCP, optionally inside TLS:
// one JSON command per line from the client, one JSON reply or push per line
// from the server, exactly the messages of the WebSocket endpoint. A person can
// use it with nc:
//
//	$ nc 127.0.0.1 7070
//	{"id":1,"op":"subscribe","channel":"chat:lobby"}
//
// Connections run on a plain nbio engine: no goroutine is kept per connection.
// The package splits lines, limits their length, queues outbound bytes with a
// byte limit per connection, and takes part in heartbeats (it sends
// {"op":"ping"} lines; any line from the client counts as a sign of life).
// Admission (the connection limit, refusals while draining) and draining at
// shutdown are package conns's, shared with the other transports. It must not
// interpret commands: that is package session's job.
package tcpconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/mempool"

	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/protocol"
)

// Config configures a Server.
type Config struct {
	// Sessions opens a session for each connection.
	Sessions *session.Manager
	// Conns admits, registers and drains the connections, with the other
	// transports' (MaxConns counts them all). Required.
	Conns *conns.Registry
	// TLS, when set, makes every connection a TLS server connection.
	TLS *tls.Config
	// MaxLineLength is the longest line a client may send, in bytes, not
	// counting the newline; a longer one gets a disconnect line (code 1009) and
	// the connection is closed.
	MaxLineLength int
	// MaxOutbound is the most bytes queued for one connection; past it the
	// connection is closed as a slow consumer.
	MaxOutbound int
	// CloseTimeout is how long a closing connection is kept open, after its final
	// line, for the client to read it and close its side.
	CloseTimeout time.Duration
	// KeepAlive is the TCP keepalive idle time; zero disables TCP keepalive.
	KeepAlive time.Duration
	// Logger receives connection events.
	Logger *slog.Logger
}

// Server is the TCP transport. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	engine   *nbio.Engine
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
	// The engine starts with the first connection: nbio v1.6.12 can hang in
	// Stop when its pollers have not yet begun to run, so a server that
	// never gets a connection never starts one (see stopEngine).
	startOnce sync.Once
	startErr  error
	started   atomic.Bool
	stopOnce  sync.Once
	quit      chan struct{} // closed by Stop: ends Serve's back-off
	quitOnce  sync.Once

	// bySocket maps each socket to its conn. The event loop finds conns here
	// rather than through the socket's session: the map's synchronisation is
	// what makes a conn's fields, set by the accepting goroutine, visible to
	// the event loop (nbio's own handoff is invisible to the race detector).
	bySocket sync.Map // *nbio.Conn -> *conn
}

// Stats are a Server's traffic counters since it started.
type Stats struct {
	BytesIn  int64 // bytes of the lines received, newlines included
	BytesOut int64 // bytes written to the sockets (TLS records included)
}

// Stats returns the server's traffic counters.
func (s *Server) Stats() Stats {
	return Stats{BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
}

// New returns a server; its event loop starts with the first connection. Hand
// it connections with Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Conns == nil {
		return nil, errors.New("tcpconn: Config.Conns is nil")
	}
	s := &Server{cfg: cfg, quit: make(chan struct{})}
	s.engine = nbio.NewEngine(nbio.Config{Name: "tether-tcp"})
	s.engine.OnData(s.onData)
	s.engine.OnClose(func(nc *nbio.Conn, _ error) {
		if c := s.connOf(nc); c != nil {
			s.closed(c)
		}
	})
	s.engine.OnWrittenSize(func(nc *nbio.Conn, _ []byte, n int) {
		if c := s.connOf(nc); c != nil {
			c.written(n)
		}
	})
	return s, nil
}

// Serve accepts connections on ln until ln is closed, and moves each to the
// event loop. It returns nil once ln is closed.
func (s *Server) Serve(ln net.Listener) error {
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.cfg.Logger.Error("tcp accept", "err", err)
			select { // out of file descriptors, say: back off rather than spin
			case <-time.After(50 * time.Millisecond):
			case <-s.quit:
				return nil
			}
			continue
		}
		s.add(nc)
	}
}

// refuse writes a disconnect line to a connection not yet on the event loop
// and closes it.
func refuse(nc net.Conn, reason string) {
	line := appendDisconnect(nil, protocol.Disconnect{Op: protocol.PushDisconnect, Code: protocol.CloseForceReconnect, Reason: reason, Reconnect: true})
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(line)
	_ = nc.Close()
}

func (s *Server) start() error {
	s.startOnce.Do(func() {
		if err := s.engine.Start(); err != nil {
			s.startErr = fmt.Errorf("tcpconn: start event loop: %w", err)
			return
		}
		s.started.Store(true)
	})
	if s.startErr == nil && !s.started.Load() {
		return errors.New("tcpconn: server stopped")
	}
	return s.startErr
}

func (s *Server) add(nc net.Conn) {
	ip := conns.IP(nc.RemoteAddr().String())
	if err := s.cfg.Conns.AdmitFrom(conns.TCP, ip); err != nil {
		reason := "too many connections"
		switch {
		case errors.Is(err, conns.ErrDraining):
			reason = "server shutting down"
		case errors.Is(err, conns.ErrTooManyFromIP):
			reason = "too many connections from your address"
		}
		refuse(nc, reason)
		return
	}
	if err := s.start(); err != nil {
		s.cfg.Conns.CancelFrom(conns.TCP, ip)
		s.cfg.Logger.Error("tcp", "err", err)
		refuse(nc, "server error")
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable:   s.cfg.KeepAlive > 0,
			Idle:     s.cfg.KeepAlive,
			Interval: max(s.cfg.KeepAlive/3, time.Second),
			Count:    3,
		})
	}
	nbc, err := nbio.NBConn(nc)
	if err != nil {
		s.cfg.Conns.CancelFrom(conns.TCP, ip)
		_ = nc.Close()
		s.cfg.Logger.Error("tcp: to event loop", "err", err)
		return
	}
	c := &conn{srv: s, nb: nbc}
	c.raw = countingConn{Conn: nbc, c: c}
	c.out = c.raw
	if s.cfg.TLS != nil {
		c.tls = tls.NewConn(c.raw, s.cfg.TLS, false, true, mempool.DefaultMemPool)
		c.out = c.tls
	}
	c.touch()
	c.sess = s.cfg.Sessions.OpenPeer(c, session.Peer{Transport: "tcp", RemoteAddr: nc.RemoteAddr().String()})
	s.bySocket.Store(nbc, c)
	if err := s.cfg.Conns.AddFrom(conns.TCP, c, ip); err != nil { // draining began meanwhile
		c.Close(protocol.DisconnectShutdown)
	}
	if _, err := s.engine.AddConn(nbc); err != nil {
		s.cfg.Logger.Error("tcp: add to event loop", "err", err)
		_ = nbc.Close()
		s.closed(c)
	}
}

func (s *Server) onData(nc *nbio.Conn, data []byte) {
	c := s.connOf(nc)
	if c == nil {
		return
	}
	if c.tls == nil {
		c.feed(data)
		return
	}
	defer c.tls.ResetOrFreeBuffer()
	in, buf := data, data // decrypt in place, as nbhttp's TLSDataHandler does
	for {
		n, err := c.readTLS(in, buf)
		in = nil
		if err != nil {
			_ = nc.Close()
			return
		}
		if n == 0 {
			return
		}
		c.feed(buf[:n])
	}
}

// closed forgets c once its socket is closed. It removes c from the registry
// last, so that a drained registry means closed sessions.
func (s *Server) closed(c *conn) {
	if !c.end() {
		return
	}
	s.bySocket.Delete(c.nb)
	c.sess.Closed()
	s.cfg.Conns.Remove(c)
	s.cfg.Logger.Debug("connection closed", "transport", "tcp", "client", c.sess.ID(), "code", c.code.Load())
}

// stopEngine stops e, giving up after d: nbio v1.6.12's Stop hangs for good
// when a poller goroutine had not begun its loop when Stop ran (it clears the
// stop flag on entry). The stuck goroutines are then left behind, and logged.
func stopEngine(e *nbio.Engine, d time.Duration, log *slog.Logger) {
	done := make(chan struct{})
	go func() { e.Stop(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		log.Warn("tcp event loop did not stop in time; leaving it", "waited", d)
	}
}

// Len returns the number of open TCP connections, counting those being set up.
func (s *Server) Len() int { return s.cfg.Conns.Count(conns.TCP) }

func (s *Server) connOf(nc *nbio.Conn) *conn {
	if c, ok := s.bySocket.Load(nc); ok {
		return c.(*conn)
	}
	return nil
}

func (s *Server) all() []*conn {
	var out []*conn
	s.bySocket.Range(func(_, c any) bool {
		out = append(out, c.(*conn))
		return true
	})
	return out
}

// Stop ends Serve's back-off, stops the event loop and drops the connections
// left. Drain them first with the registry's Shutdown. It waits for the event
// loop 5s at most, and past ctx's deadline only briefly. The caller closes the
// listeners. Calls after the first only drop what is left.
func (s *Server) Stop(ctx context.Context) {
	s.quitOnce.Do(func() { close(s.quit) })
	s.stopOnce.Do(func() { // closes what is left
		s.startOnce.Do(func() {}) // no start from here on
		if s.started.Load() {
			wait := 5 * time.Second // or until just after ctx's deadline, if sooner
			if dl, ok := ctx.Deadline(); ok {
				wait = min(wait, max(time.Until(dl), 0)+100*time.Millisecond)
			}
			stopEngine(s.engine, wait, s.cfg.Logger)
		}
	})
	for _, c := range s.all() {
		s.closed(c)
	}
}

// The node's heartbeats watch the registry's connections that are
// heartbeat.Peers: a conn must stay one.
var _ heartbeat.Peer = (*conn)(nil)
