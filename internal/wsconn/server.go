// Package wsconn serves tether over WebSocket on nbio's event loop: the protocol
// endpoint, whose connections each carry a session, and the echo endpoint. It
// checks origins at the upgrade, frames and queues outbound bytes with a byte
// limit per connection, and takes part in heartbeats. Admission (the connection
// limit, refusals while draining) and draining at shutdown are package conns's,
// shared with the other transports.
//
// No goroutine is kept per connection. The package must not interpret commands:
// that is package session's job.
package wsconn

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/protocol"
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
	// Heartbeats pings the connections and expires silent ones; nil disables.
	Heartbeats *heartbeat.Monitor
	// MaxMessageSize is the largest message a client may send, in bytes; larger
	// ones close the connection with 1009.
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
	// Logger receives connection events.
	Logger *slog.Logger
}

// Server is the WebSocket transport. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	protocol *nbws.Upgrader
	echo     *nbws.Upgrader
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
// the engine starts: the outbound limit needs to see what leaves, and malformed
// frames need OnData to be closed with 1002.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg}
	s.protocol = s.newUpgrader()
	s.echo = s.newUpgrader()
	return s
}

func (s *Server) newUpgrader() *nbws.Upgrader {
	u := nbws.NewUpgrader()
	u.Engine = s.cfg.Engine
	u.BlockingModTrasferConnToPoller = true // from net/http servers: to the poller, no goroutine
	u.KeepaliveTime = 0                     // heartbeats are ours
	u.MessageLengthLimit = s.cfg.MaxMessageSize
	u.CheckOrigin = func(*http.Request) bool { return true } // checked before Upgrade
	u.OnMessage(func(ws *nbws.Conn, mt nbws.MessageType, data []byte) {
		c := connOf(ws)
		if c == nil {
			return
		}
		s.bytesIn.Add(int64(len(data)))
		c.touch()
		if mt == nbws.TextMessage && !utf8.Valid(data) {
			c.closeCode(1007, "invalid UTF-8 in a text frame")
			return
		}
		if c.sess == nil {
			c.echo(mt, data)
			return
		}
		c.sess.Handle(data)
	})
	u.SetPingHandler(func(ws *nbws.Conn, data string) {
		if c := connOf(ws); c != nil {
			c.touch()
			c.writeControl(0xA, []byte(data))
		}
	})
	u.SetPongHandler(func(ws *nbws.Conn, _ string) {
		if c := connOf(ws); c != nil {
			c.touch()
		}
	})
	u.SetCloseHandler(func(ws *nbws.Conn, code int, reason string) {
		if c := connOf(ws); c != nil {
			c.peerClosed(code)
		}
	})
	u.OnClose(func(ws *nbws.Conn, err error) {
		if c := connOf(ws); c != nil {
			s.closed(c)
		}
	})
	return u
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
func (s *Server) Handler() http.Handler { return s.handler(s.protocol) }

// EchoHandler returns the echo endpoint: every message comes back with its type.
func (s *Server) EchoHandler() http.Handler { return s.handler(s.echo) }

func (s *Server) handler(u *nbws.Upgrader) http.Handler {
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
		c := &conn{srv: s}
		c.touch()
		ws, err := u.Upgrade(w, r, nil)
		if err != nil {
			s.cfg.Conns.CancelFrom(conns.WebSocket, ip)
			s.cfg.Logger.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		c.ws = ws
		c.nb = ws.Conn
		if hc, ok := c.nb.(*nbhttp.Conn); ok { // served by the engine: unwrap
			c.nb = hc.Conn
		}
		if u == s.protocol {
			c.sess = s.cfg.Sessions.OpenPeer(c, session.Peer{Transport: "websocket", RemoteAddr: r.RemoteAddr, Header: r.Header, Query: r.URL.Query()})
		}
		draining := s.cfg.Conns.AddFrom(conns.WebSocket, c, ip) != nil
		// Publish c to the poller and executor goroutines. nbio hands it over
		// without a synchronisation the race detector sees; ready is that edge.
		c.ready.Store(true)
		ws.SetSession(c) // handlers waiting in connOf go on from here
		if s.cfg.Heartbeats != nil {
			s.cfg.Heartbeats.Add(c)
		}
		if draining { // Shutdown began during the upgrade and may have missed c
			c.Close(protocol.DisconnectShutdown)
		}
	})
}

// plainSocket returns the event loop's socket under an upgraded connection,
// or nil under TLS, whose bytes must go through nbhttp's TLS handler first
// (a malformed frame there drops the connection without a close frame; see
// OnData). Connections from an nbhttp engine come wrapped in an *nbhttp.Conn.
func plainSocket(c net.Conn) *nbio.Conn {
	if hc, ok := c.(*nbhttp.Conn); ok {
		c = hc.Conn
	}
	nbc, _ := c.(*nbio.Conn)
	return nbc
}

// connOf returns the conn of ws. A handler can run before the upgrading
// goroutine has set it (a client may write right after the 101 response), so it
// waits for it, a little.
func connOf(ws *nbws.Conn) *conn {
	for deadline := time.Now().Add(time.Second); ; runtime.Gosched() {
		if c, ok := ws.Session().(*conn); ok && c.ready.Load() {
			return c
		}
		if time.Now().After(deadline) {
			return nil
		}
	}
}

// closed forgets c once its socket is closed. It removes c from the registry
// last, so that a drained registry means closed sessions.
func (s *Server) closed(c *conn) {
	if !c.gone.CompareAndSwap(false, true) {
		return
	}
	if s.cfg.Heartbeats != nil {
		s.cfg.Heartbeats.Remove(c)
	}
	if c.sess != nil {
		c.sess.Closed()
		s.cfg.Logger.Debug("connection closed", "client", c.sess.ID(), "code", c.code.Load())
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
func OnWrittenSize(c *nbio.Conn, _ []byte, n int) {
	if ws, ok := c.Session().(*nbws.Conn); ok {
		if cc, ok := ws.Session().(*conn); ok {
			for {
				q := cc.queued.Load()
				if cc.queued.CompareAndSwap(q, max(q-int64(n), 0)) {
					cc.srv.bytesOut.Add(int64(n))
					return
				}
			}
		}
	}
}

var _ net.Conn = (*nbio.Conn)(nil)
