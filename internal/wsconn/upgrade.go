package wsconn

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/protocol"
)

// ErrHandshake is the reason an upgrade request that is not a valid WebSocket
// opening handshake (RFC 6455, section 4.2.1) is refused.
var ErrHandshake = errors.New("wsconn: invalid WebSocket handshake")

// deflateResponse is the extension tether answers a permessage-deflate offer
// with: neither side keeps its compression context between messages, so the
// server compresses a publication once for every subscriber, and inflates a
// client's message without a window kept per connection.
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// checkHandshake checks an upgrade request and returns its key and the
// Sec-WebSocket-Extensions value to answer with ("" for none), or the HTTP
// status to refuse it with.
func (s *Server) checkHandshake(r *http.Request) (key, ext string, status int, err error) {
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade"), !headerHasToken(r.Header, "Upgrade", "websocket"):
		return "", "", http.StatusBadRequest, fmt.Errorf("%w: not an upgrade to websocket", ErrHandshake)
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return "", "", http.StatusUpgradeRequired, fmt.Errorf("%w: version %q, want 13", ErrHandshake, r.Header.Get("Sec-WebSocket-Version"))
	}
	key = r.Header.Get("Sec-WebSocket-Key")
	var k [18]byte
	if n, err := base64.StdEncoding.Decode(k[:], []byte(key)); err != nil || n != 16 || len(key) != 24 {
		return "", "", http.StatusBadRequest, fmt.Errorf("%w: bad Sec-WebSocket-Key", ErrHandshake)
	}
	if s.cfg.Compression != nil {
		ext = negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))
	}
	return key, ext, 0, nil
}

// headerHasToken reports whether a comma-separated header holds token, in any
// case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// negotiateDeflate returns the answer to the first permessage-deflate offer in
// the Sec-WebSocket-Extensions values that tether can accept (RFC 7692,
// section 7.1), or "". An offer is declined when it has a parameter the
// extension does not define, a parameter twice, a bad value, or
// server_max_window_bits below 15 (tether's compressor uses a 32 KiB window).
// client_max_window_bits needs no answer: any window inflates.
func negotiateDeflate(values []string) string {
	for _, v := range values {
	offers:
		for offer := range strings.SplitSeq(v, ",") {
			params := strings.Split(offer, ";")
			if strings.TrimSpace(params[0]) != "permessage-deflate" {
				continue
			}
			seen := map[string]bool{}
			resp := deflateResponse
			for _, p := range params[1:] {
				name, val, hasVal := strings.Cut(strings.TrimSpace(p), "=")
				name, val = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"`)
				if seen[name] {
					continue offers
				}
				seen[name] = true
				switch name {
				case "server_no_context_takeover", "client_no_context_takeover":
					if hasVal {
						continue offers
					}
				case "server_max_window_bits":
					if bits, err := strconv.Atoi(val); err != nil || bits != 15 {
						continue offers
					}
					resp += "; server_max_window_bits=15"
				case "client_max_window_bits":
					if bits, err := strconv.Atoi(val); hasVal && (err != nil || bits < 8 || bits > 15) {
						continue offers
					}
				default:
					continue offers
				}
			}
			return resp
		}
	}
	return ""
}

// websocketGUID is what RFC 6455 appends to the client's key.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// responses holds buffers for handshake answers: a connection's answer is
// written and forgotten, and 10,000 of them made and dropped in a burst of
// connections would weigh on the heap the connections live in.
var responses = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendSwitchingProtocols appends the handshake's answer to key, with the
// extension answer ext when not empty.
func appendSwitchingProtocols(b []byte, key, ext string) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	var in [24 + len(websocketGUID)]byte // a valid key is 24 characters
	sum := sha1.Sum(append(append(in[:0], key...), websocketGUID...))
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	if ext != "" {
		b = append(b, "\r\nSec-WebSocket-Extensions: "...)
		b = append(b, ext...)
	}
	return append(b, "\r\n\r\n"...)
}

// upgrade answers the opening handshake and moves the connection to the event
// loop. It returns an error when the request was refused or the connection
// lost before it was set up; once it returns nil, the connection's end is
// reported through closed.
//
// Connections come in three kinds. Under tether's engine (its own listener)
// the socket already is on the event loop, plain or under nbio's TLS; there the
// handler runs on the socket's executor, which also runs the engine's close
// callback, so the two never overlap. From a net/http server, a plain TCP
// socket is moved to the event loop. Anything else (net/http's own TLS) is
// read by a goroutine of its own, with blocking writes.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, echo bool, ip string) error {
	key, ext, status, err := s.checkHandshake(r)
	if err != nil {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Sec-WebSocket-Version", "13")
		}
		http.Error(w, err.Error(), status)
		return err
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "connection cannot be upgraded", http.StatusInternalServerError)
		return fmt.Errorf("wsconn: %T cannot hijack", w)
	}
	hijacked, _, err := hj.Hijack()
	if err != nil {
		return fmt.Errorf("wsconn: hijack: %w", err)
	}
	// Bytes the client sent after its request, before our answer, are not
	// read: RFC 6455 has it wait for the answer (section 4.1).
	c := &conn{srv: s, deflate: ext != ""}
	c.rd.max, c.rd.deflate = int32(s.cfg.MaxMessageSize), c.deflate
	c.touch()
	buf := responses.Get().(*[]byte)
	defer responses.Put(buf)
	resp := appendSwitchingProtocols((*buf)[:0], key, ext)
	*buf = resp[:0]
	if hc, ok := hijacked.(*nbhttp.Conn); ok {
		hc.Parser = nil // the request parser's job is done
		c.nb = hc.Conn
		if sock := c.socket(); sock != nil {
			if s.cfg.Upgraded != nil {
				s.cfg.Upgraded(c.nb)
			}
			_ = c.nb.SetReadDeadline(time.Time{}) // nbhttp's keepalive: heartbeats are ours
			// Hold wmu until the answer is out: once its session is open, c can
			// be closed (by id, through the API) before it is registered.
			c.wmu.Lock()
			s.open(c, r, echo)
			sock.SetSession(c) // from here the poller hands c the socket's bytes
			sock.OnData(OnData)
			c.queued.Add(int64(len(resp)))
			err := c.send(resp)
			c.wmu.Unlock()
			if err != nil {
				_ = c.nb.Close() // the engine reports the close: closed runs
			}
			s.register(c, ip)
			return nil
		}
	}
	// From a net/http server: answer, then take the socket over.
	if _, err := hijacked.Write(resp); err != nil {
		_ = hijacked.Close()
		return fmt.Errorf("wsconn: write handshake response: %w", err)
	}
	if tc, ok := hijacked.(*net.TCPConn); ok {
		if nc, err := nbio.NBConn(tc); err == nil { // dups the socket and closes tc
			c.nb = nc
			s.open(c, r, echo)
			nc.SetSession(c)
			nc.OnData(OnData)
			if err := s.cfg.Engine.AddTransferredConn(nc); err != nil {
				_ = nc.Close()
				c.finish() // never reached the engine: nothing will report it
				if c.sess != nil {
					c.sess.Closed()
				}
				return fmt.Errorf("wsconn: move to the event loop: %w", err)
			}
			s.register(c, ip)
			return nil
		}
	}
	c.nb = hijacked
	_ = c.nb.SetDeadline(time.Time{})
	s.open(c, r, echo)
	s.register(c, ip)
	go s.readBlocking(c)
	return nil
}

// open starts c's session on the protocol endpoint, with what its upgrade
// request r says of the peer, and publishes c (see load).
func (s *Server) open(c *conn, r *http.Request, echo bool) {
	if !echo {
		c.sess = s.cfg.Sessions.OpenPeer(c, session.Peer{Transport: "websocket", RemoteAddr: r.RemoteAddr, Header: r.Header, Query: r.URL.Query()})
	}
	c.life.Store(uint32(makeLife(stateOpen, reasonNone, 0)))
}

// register makes c, from address ip, known to the registry (Shutdown, Abort,
// the per-address limit, and the heartbeats, which watch the registry's
// connections) once it is open; a connection that closed meanwhile is taken
// out again (closed found nothing to remove, so the place is freed here).
func (s *Server) register(c *conn, ip string) {
	draining := s.cfg.Conns.AddFrom(conns.WebSocket, c, ip) != nil
	if c.load().state() == stateClosed { // closed ran before the add
		s.cfg.Conns.Remove(c)
		return
	}
	if draining { // Shutdown began during the upgrade and may have missed c
		c.Close(protocol.DisconnectShutdown)
	}
}

// readBlocking reads a connection the event loop cannot take (net/http's TLS)
// until it ends.
func (s *Server) readBlocking(c *conn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.nb.Read(buf)
		if n > 0 {
			_ = c.Parse(buf[:n])
		}
		if err != nil {
			break
		}
	}
	_ = c.nb.Close()
	s.closed(c)
}

// OnData is the engine's data handler; install it with Engine.OnData. It
// hands the bytes of upgraded connections to their frame reader, decrypting
// them first under TLS, and every other connection's to its own handler
// (nbhttp's HTTP or TLS parser). Installed at the engine rather than per
// connection, it sees every byte of the event loop's sockets.
func OnData(nc *nbio.Conn, data []byte) {
	c, ok := nc.Session().(*conn)
	if !ok {
		nc.DataHandler()(nc, data)
		return
	}
	c.load() // see load
	tc, ok := c.nb.(*tls.Conn)
	if !ok {
		_ = c.Parse(data)
		return
	}
	defer tc.ResetOrFreeBuffer()
	for in := data; ; in = nil { // as nbhttp's TLSDataHandler does
		_, n, err := tc.AppendAndRead(in, data)
		if err != nil {
			_ = nc.CloseWithError(err)
			return
		}
		if n == 0 {
			return
		}
		_ = c.Parse(data[:n])
	}
}
