// Package wsconn serves tether over WebSocket on nbio's event loop: the protocol
// endpoint, whose connections each carry a session, and the echo endpoint. It
// answers the opening handshake (checking origins and connection limits, and
// negotiating permessage-deflate), reads client frames itself (RFC 6455 in
// full: every violation ends with a close frame carrying its code), writes
// frames built once per batch by the hub with a byte limit per connection,
// and takes part in heartbeats.
//
// No goroutine is kept per connection (but for connections the event loop
// cannot take: TLS terminated by a net/http server). The package must not
// interpret commands: that is package session's job.
package wsconn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// Config configures a Server.
type Config struct {
	// Engine is the nbio engine connections are moved to after the upgrade.
	Engine *nbhttp.Engine
	// Sessions opens a session for each protocol connection.
	Sessions *session.Manager
	// Heartbeats pings the connections and expires silent ones; nil disables.
	Heartbeats *heartbeat.Monitor
	// MaxMessageSize is the largest message a client may send, in bytes, after
	// inflation; larger ones close the connection with 1009.
	MaxMessageSize int
	// MaxOutbound is the most bytes queued for one connection; past it the
	// connection is closed as a slow consumer.
	MaxOutbound int
	// MaxConns caps open WebSocket connections; further upgrades get 503.
	MaxConns int
	// AllowedOrigins lists the origins (scheme://host[:port]) allowed besides the
	// request's own host; "*" allows any.
	AllowedOrigins []string
	// CloseTimeout is how long a closing connection waits for the client's close
	// frame before it is dropped.
	CloseTimeout time.Duration
	// Compression, when set, negotiates permessage-deflate (RFC 7692) with the
	// clients that offer it, on both endpoints, without context takeover
	// either way. Such a connection's Format is wire.WebSocketDeflate, so the
	// hub's batches reach it compressed once for all; echoes and messages it
	// sends compressed are (de)compressed per message. Nil: never negotiated.
	Compression *wire.Compression
	// Logger receives connection events.
	Logger *slog.Logger
}

// Server is the WebSocket transport. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	conns    connSet
	count    atomic.Int64
	draining atomic.Bool
	bytesIn  atomic.Int64
	bytesOut atomic.Int64
}

// Stats are a Server's traffic counters since it started.
type Stats struct {
	BytesIn  int64 // payload bytes of the messages received
	BytesOut int64 // bytes written to the sockets, framing included
}

// Stats returns the server's traffic counters.
func (s *Server) Stats() Stats {
	return Stats{BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
}

// Draining reports whether Shutdown has started.
func (s *Server) Draining() bool { return s.draining.Load() }

// New returns a server. Install OnWrittenSize and OnData on cfg.Engine before
// the engine starts: the outbound limit needs to see what leaves, and upgraded
// connections' bytes need OnData to reach their frame reader.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg}
	s.conns.init()
	return s
}

// ErrOrigin is the reason an upgrade from a foreign origin is refused.
var ErrOrigin = errors.New("wsconn: origin not allowed")

// checkOrigin allows requests without Origin (non-browser clients), from the
// request's own host, and from the allowed list.
func (s *Server) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return ErrOrigin
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, a := range s.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return nil
		}
	}
	return ErrOrigin
}

// Handler returns the protocol endpoint.
func (s *Server) Handler() http.Handler { return s.handler(false) }

// EchoHandler returns the echo endpoint: every message comes back with its type.
func (s *Server) EchoHandler() http.Handler { return s.handler(true) }

func (s *Server) handler(echo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkOrigin(r); err != nil {
			http.Error(w, "origin "+r.Header.Get("Origin")+" is not allowed; see --allowed-origins", http.StatusForbidden)
			return
		}
		if s.draining.Load() {
			http.Error(w, "server is shutting down", http.StatusServiceUnavailable)
			return
		}
		if n := s.count.Add(1); s.cfg.MaxConns > 0 && n > int64(s.cfg.MaxConns) {
			s.count.Add(-1)
			http.Error(w, "too many connections", http.StatusServiceUnavailable)
			return
		}
		if err := s.upgrade(w, r, echo); err != nil {
			s.count.Add(-1)
			s.cfg.Logger.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		}
	})
}

// closed releases c once its socket is gone.
func (s *Server) closed(c *conn) {
	if !c.finish() {
		return
	}
	s.count.Add(-1)
	s.unregister(c)
	if c.sess != nil {
		c.sess.Closed()
		l := c.load()
		s.cfg.Logger.Debug("connection closed", "client", c.sess.ID(), "reason", l.reason(), "code", l.code())
	}
}

// unregister undoes register.
func (s *Server) unregister(c *conn) {
	s.conns.remove(c)
	if s.cfg.Heartbeats != nil {
		s.cfg.Heartbeats.Remove(c)
	}
}

// Len returns the number of open WebSocket connections.
func (s *Server) Len() int { return int(s.count.Load()) }

// OnWrittenSize accounts bytes the engine wrote; install it with
// Engine.OnWrittenSize.
//
// The count stops at zero: under TLS the engine reports encrypted bytes, a
// little more than the frames queued (record headers, handshake messages), and
// close frames are written uncounted, so without the floor the count would
// drift below zero over a connection's life and loosen the limit.
func OnWrittenSize(nc *nbio.Conn, _ []byte, n int) {
	c, ok := nc.Session().(*conn)
	if !ok {
		return
	}
	c.load() // see load
	for {
		q := c.queued.Load()
		if c.queued.CompareAndSwap(q, max(q-int64(n), 0)) {
			c.srv.bytesOut.Add(int64(n))
			return
		}
	}
}

// Shutdown refuses new upgrades, closes every connection with d (a disconnect
// push, then a close frame with d.Code) and waits until they are gone or ctx
// ends, when it drops the rest.
func (s *Server) Shutdown(ctx context.Context, d protocol.Disconnect) error {
	s.draining.Store(true)
	all := s.conns.all()
	work := make(chan *conn)
	var wg sync.WaitGroup
	for range 8 { // bounded: a fixed number of workers whatever the count
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.Close(d)
			}
		}()
	}
	for _, c := range all {
		select {
		case work <- c:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.Len() > 0 {
		select {
		case <-ctx.Done():
			for _, c := range s.conns.all() {
				_ = c.nb.Close()
			}
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// connSet is the set of open connections, sharded to keep upgrades from
// contending.
type connSet struct {
	shards [16]struct {
		mu sync.Mutex
		m  map[*conn]struct{}
	}
	next atomic.Uint32
}

func (cs *connSet) init() {
	for i := range cs.shards {
		cs.shards[i].m = make(map[*conn]struct{})
	}
}

func (cs *connSet) add(c *conn) {
	c.shard = uint8(cs.next.Add(1) % uint32(len(cs.shards)))
	sh := &cs.shards[c.shard]
	sh.mu.Lock()
	sh.m[c] = struct{}{}
	sh.mu.Unlock()
}

func (cs *connSet) remove(c *conn) {
	sh := &cs.shards[c.shard]
	sh.mu.Lock()
	delete(sh.m, c)
	sh.mu.Unlock()
}

func (cs *connSet) all() []*conn {
	var out []*conn
	for i := range cs.shards {
		sh := &cs.shards[i]
		sh.mu.Lock()
		for c := range sh.m {
			out = append(out, c)
		}
		sh.mu.Unlock()
	}
	return out
}

var (
	_ net.Conn            = (*nbio.Conn)(nil)
	_ nbhttp.ParserCloser = (*conn)(nil)
)
