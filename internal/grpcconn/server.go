// Package grpcconn serves tether's protocol over a gRPC bidirectional stream,
// tether.v1.Tether/Connect: each stream message carries one command or one
// reply or push, as the JSON of the WebSocket endpoint, run by the same session
// code. It queues outbound messages with a byte limit per stream and closes
// slow consumers as the other transports do.
//
// gRPC runs a goroutine per stream; this package adds a sender and a receiver
// per stream, so that a stream blocked on a slow client can still be ended.
// Dead peers are found by HTTP/2 keepalive, configured on the grpc.Server. The
// package must not interpret commands (package session does) and does not own
// the grpc.Server or its listener.
package grpcconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/internal/session"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// Config configures a Server.
type Config struct {
	// Sessions opens a session for each stream.
	Sessions *session.Manager
	// MaxOutbound is the most bytes queued for one stream; past it the stream
	// is closed as a slow consumer.
	MaxOutbound int
	// MaxConns caps open streams; more are refused with RESOURCE_EXHAUSTED.
	MaxConns int
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
	count    atomic.Int64
	draining atomic.Bool

	mu    sync.Mutex
	conns map[*conn]struct{}
}

var _ tetherv1.TetherServer = (*Server)(nil)

// New returns a server; register it with tetherv1.RegisterTetherServer.
func New(cfg Config) *Server {
	return &Server{cfg: cfg, conns: make(map[*conn]struct{})}
}

// Connect implements tetherv1.TetherServer: it runs one session on stream.
func (s *Server) Connect(stream tetherv1.Tether_ConnectServer) error {
	if s.draining.Load() {
		return status.Error(codes.Unavailable, "server shutting down")
	}
	if n := s.count.Add(1); s.cfg.MaxConns > 0 && n > int64(s.cfg.MaxConns) {
		s.count.Add(-1)
		return status.Error(codes.ResourceExhausted, "too many connections")
	}
	c := &conn{
		srv:     s,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
	}
	c.sess = s.cfg.Sessions.Open(c)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer s.closed(c)
	if s.draining.Load() { // Shutdown began meanwhile and may have missed c
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
			case <-stream.Context().Done():
			}
			return c.status()
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (s *Server) closed(c *conn) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.mu.Unlock()
	if !ok {
		return
	}
	c.markClosed()
	s.count.Add(-1)
	c.sess.Closed()
}

// Len returns the number of open streams.
func (s *Server) Len() int { return int(s.count.Load()) }

// Shutdown refuses new streams, closes every stream with d (a disconnect
// message, then a status that mirrors it) and waits until they are gone or ctx
// ends.
func (s *Server) Shutdown(ctx context.Context, d protocol.Disconnect) error {
	s.draining.Store(true)
	s.mu.Lock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all { // Close does not block: no workers needed
		c.Close(d)
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.Len() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("grpcconn: %d streams left: %w", s.Len(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
