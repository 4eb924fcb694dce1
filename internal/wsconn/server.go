// Package wsconn serves tether over WebSocket on nbio's event loop: the protocol
// endpoint, whose connections each carry a session, and the echo endpoint. It
// answers the opening handshake (checking origins and negotiating
// permessage-deflate), reads client frames itself (RFC 6455 in full: every
// violation ends with a close frame carrying its code), writes frames built
// once per batch by the hub with a byte limit per connection, and takes part
// in heartbeats. Admission (the connection limit, refusals while draining) and
// draining at shutdown are package conns's, shared with the other transports.
//
// No goroutine is kept per connection (but for connections the event loop
// cannot take: TLS terminated by a net/http server). The package must not
// interpret commands: that is package session's job.
package wsconn

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
)

// Config configures a Server.
type Config struct {
	// Engine is the nbio engine connections are moved to after the upgrade.
	Engine *nbhttp.Engine
	// Sessions opens a session for each protocol connection.
	Sessions *session.Manager
	// Conns admits, registers and drains the connections, with the other
	// transports' (MaxConns counts them all); a refused upgrade gets 503.
	// Required.
	Conns *conns.Registry
	// MaxMessageSize is the largest message a client may send, in bytes, after
	// inflation; larger ones close the connection with 1009.
	MaxMessageSize int
	// MaxOutbound is the most bytes queued for one connection; past it the
	// connection is closed as a slow consumer.
	MaxOutbound int
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
	// Upgraded, when set, is called with each upgraded connection's socket
	// just before its handshake read deadline is cleared (the node's listener
	// clears it again if nbhttp's accept goroutine may still set it).
	Upgraded func(net.Conn)
}

// Server is the WebSocket transport. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
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

// New returns a server. Install OnWrittenSize and OnData on cfg.Engine before
// the engine starts: the outbound limit needs to see what leaves, and upgraded
// connections' bytes need OnData to reach their frame reader.
func New(cfg Config) *Server {
	return &Server{cfg: cfg}
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
		ip := conns.IP(r.RemoteAddr)
		if err := s.cfg.Conns.AdmitFrom(conns.WebSocket, ip); err != nil {
			msg, status := "too many connections", http.StatusServiceUnavailable
			switch {
			case errors.Is(err, conns.ErrDraining):
				msg = "server is shutting down"
			case errors.Is(err, conns.ErrTooManyFromIP):
				msg, status = "too many connections from your address", http.StatusTooManyRequests
			}
			http.Error(w, msg, status)
			return
		}
		if err := s.upgrade(w, r, echo, ip); err != nil {
			s.cfg.Conns.CancelFrom(conns.WebSocket, ip)
			s.cfg.Logger.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		}
	})
}

// closed releases c once its socket is gone. It takes c out of the registry
// last, so that a drained registry means closed sessions.
func (s *Server) closed(c *conn) {
	if !c.finish() {
		return
	}
	if c.sess != nil {
		c.sess.Closed()
		l := c.load()
		s.cfg.Logger.Debug("connection closed", "client", c.sess.ID(), "reason", l.reason(), "code", l.code())
	}
	s.cfg.Conns.Remove(c)
}

// Drop implements conns.Conn: it closes the socket at once.
func (c *conn) Drop() { _ = c.nb.Close() }

// Len returns the number of open WebSocket connections, counting those being
// upgraded.
func (s *Server) Len() int { return s.cfg.Conns.Count(conns.WebSocket) }

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

// The node's heartbeats watch the registry's connections that are
// heartbeat.Peers: a conn must stay one.
var _ heartbeat.Peer = (*conn)(nil)
