package tether_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// forEachTransport runs f over plaintext and over TLS.
func forEachTransport(t *testing.T, cfg tether.Config, f func(t *testing.T, e *env)) {
	for _, secure := range []bool{false, true} {
		name := "plaintext"
		if secure {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) { f(t, startEnv(t, cfg, secure)) })
	}
}

// rawDialEnv opens a hand-rolled WebSocket to path on e's node, over TLS when
// e has it, and fails the test unless the upgrade succeeds.
func rawDialEnv(t testing.TB, e *env, path string, header http.Header) *rawConn {
	t.Helper()
	addr := e.n.Addr().String()
	var nc net.Conn
	var err error
	if e.pool != nil {
		nc, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, e.tlsConfig())
	} else {
		nc, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := handshake(t, nc, addr, path, header)
	if c.status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade to %s: status %d", path, c.status)
	}
	return c
}

// coderDial opens a coder/websocket connection to path on e's node.
func coderDial(t testing.TB, e *env, path string, mode websocket.CompressionMode) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	scheme := "ws://"
	if e.pool != nil {
		scheme = "wss://"
	}
	c, _, err := websocket.Dial(ctx, scheme+e.n.Addr().String()+path, &websocket.DialOptions{HTTPClient: e.httpClient(), CompressionMode: mode})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// deflateMessage compresses p as a permessage-deflate client without context
// takeover does.
func deflateMessage(p []byte) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// inflateMessage inflates a permessage-deflate payload with compress/flate,
// independently of the server's code.
func inflateMessage(t testing.TB, p []byte) []byte {
	t.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})))
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return out
}

// TestWebSocketProtocolErrors: every violation of RFC 6455 ends with a close
// frame carrying its code, and, once the client answers it, with a clean end
// of the connection rather than a reset; over plaintext and TLS, on both
// endpoints, and the node keeps serving.
func TestWebSocketProtocolErrors(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxMessageSize = 4096
	deflate := http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}}
	tests := []struct {
		name   string
		path   string
		header http.Header
		frame  []byte
		code   int
	}{
		{"unmasked frame", "/ws", nil, []byte{0x81, 0x02, 'h', 'i'}, protocol.CloseProtocolError},
		{"unmasked frame on echo", "/ws/echo", nil, []byte{0x82, 0x00}, protocol.CloseProtocolError},
		{"stray continuation", "/ws", nil, maskedFrame(0x80, []byte("x")), protocol.CloseProtocolError},
		{"stray continuation on echo", "/ws/echo", nil, maskedFrame(0x00, nil), protocol.CloseProtocolError},
		{"text inside a fragmented message", "/ws/echo", nil, append(maskedFrame(0x01, []byte("a")), maskedFrame(0x81, []byte("b"))...), protocol.CloseProtocolError},
		{"reserved opcode", "/ws", nil, maskedFrame(0x83, nil), protocol.CloseProtocolError},
		{"reserved bits", "/ws", nil, maskedFrame(0xF1, nil), protocol.CloseProtocolError},
		{"RSV1 without permessage-deflate", "/ws", nil, maskedFrame(0xC1, []byte("{}")), protocol.CloseProtocolError},
		{"fragmented ping", "/ws/echo", nil, maskedFrame(0x09, nil), protocol.CloseProtocolError},
		{"ping over 125 bytes", "/ws/echo", nil, maskedFrame(0x89, make([]byte, 126)), protocol.CloseProtocolError},
		{"close code 999", "/ws/echo", nil, maskedFrame(0x88, []byte{0x03, 0xe7}), protocol.CloseProtocolError},
		{"invalid UTF-8", "/ws", nil, maskedFrame(0x81, []byte(`{"op":"ping","x":"`+"\xff"+`"}`)), protocol.CloseInvalidPayload},
		{"invalid UTF-8 in a close reason", "/ws/echo", nil, maskedFrame(0x88, []byte{0x03, 0xe8, 0xff}), protocol.CloseInvalidPayload},
		{"message over the limit", "/ws/echo", nil, maskedFrame(0x82, make([]byte, 5000)), protocol.CloseTooBig},
		{"compression bomb", "/ws", deflate, maskedFrame(0xC1, deflateMessage(make([]byte, 1<<20))), protocol.CloseTooBig},
		{"compression bomb on echo", "/ws/echo", deflate, maskedFrame(0xC2, deflateMessage(make([]byte, 1<<20))), protocol.CloseTooBig},
		{"corrupt compressed data", "/ws/echo", deflate, maskedFrame(0xC2, []byte{0xff, 0xff, 0xff}), protocol.CloseInvalidPayload},
	}
	forEachTransport(t, cfg, func(t *testing.T, e *env) {
		bystander := e.dialWS()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := rawDialEnv(t, e, tt.path, tt.header)
				if tt.header != nil && !strings.Contains(c.header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
					t.Fatalf("permessage-deflate not negotiated: %q", c.header.Get("Sec-WebSocket-Extensions"))
				}
				if tt.frame[0]&0x40 != 0 && len(tt.frame) >= cfg.MaxMessageSize {
					t.Fatalf("compressed frame of %d bytes: not under the limit, so not a bomb", len(tt.frame))
				}
				_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.nc.Write(tt.frame); err != nil {
					t.Fatal(err)
				}
				if got := c.closeCode(5 * time.Second); got != tt.code {
					t.Fatalf("close code %d, want %d (0: no close frame)", got, tt.code)
				}
				if tt.frame[0]&0x0f != 0x8 { // a client that sent a close frame has nothing more to say
					c.writeFrame(0x88, []byte{0x03, 0xe8})
				}
				if _, _, err := c.readFrame(5 * time.Second); !errors.Is(err, io.EOF) {
					t.Fatalf("after the closing handshake: %v, want the connection to end (EOF)", err)
				}
			})
		}
		if m := bystander.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("bystander ping: %v", m.Error)
		}
	})
}

// TestWebSocketEmptyMessages: an empty text or binary message is a message:
// the echo endpoint returns it with its type, and an empty command gets an
// error reply; over plaintext and TLS.
func TestWebSocketEmptyMessages(t *testing.T) {
	forEachTransport(t, tethertest.Config(), func(t *testing.T, e *env) {
		t.Run("echo", func(t *testing.T) {
			c := rawDialEnv(t, e, "/ws/echo", nil)
			for _, b0 := range []byte{0x81, 0x82} {
				c.writeFrame(b0, nil)
				got, p, err := c.readFrameB0(5 * time.Second)
				if err != nil || got != b0 || len(p) != 0 {
					t.Fatalf("echo of an empty %#x frame: %#x %q %v", b0, got, p, err)
				}
			}
			// An independent client sees the same.
			cc := coderDial(t, e, "/ws/echo", websocket.CompressionDisabled)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
				if err := cc.Write(ctx, typ, nil); err != nil {
					t.Fatal(err)
				}
				if gotTyp, p, err := cc.Read(ctx); err != nil || gotTyp != typ || len(p) != 0 {
					t.Fatalf("coder/websocket echo of an empty %v message: %v %q %v", typ, gotTyp, p, err)
				}
			}
		})
		t.Run("empty command", func(t *testing.T) {
			c := rawDialEnv(t, e, "/ws", nil)
			c.writeFrame(0x81, nil)
			op, p, err := c.readFrame(5 * time.Second)
			if err != nil || op != 0x1 {
				t.Fatalf("reply to an empty command: opcode %d, %v", op, err)
			}
			var m message
			if err := json.Unmarshal(p, &m); err != nil || m.Error == nil || m.Error.Code != protocol.ErrBadRequest {
				t.Fatalf("reply to an empty command: %s", p)
			}
		})
	})
}

// readPub reads frames from c until a publication; it returns the message's
// bytes (inflated when compressed) and the frame as it came.
func readPub(t testing.TB, c *rawConn) (msg, raw []byte, compressed bool) {
	t.Helper()
	for {
		b0, p, err := c.readFrameB0(5 * time.Second)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		raw = p
		if compressed = b0&0x40 != 0; compressed {
			p = inflateMessage(t, p)
		}
		if bytes.Contains(p[:min(len(p), 20)], []byte(`"op":"pub"`)) {
			return p, raw, compressed
		}
	}
}

// readCoderPub reads messages from c until a publication.
func readCoderPub(t testing.TB, c *websocket.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if bytes.Contains(p[:min(len(p), 20)], []byte(`"op":"pub"`)) {
			return p
		}
	}
}

// jsonOfSize returns a JSON object of about n bytes, as a chat message or an
// update would be.
func jsonOfSize(n int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","text":"hello from the lobby, message %d","ts":%d}`, i, i%5, i, 1700000000+i)
	}
	return b.String() + `]}`
}

// TestCompressionSharedFrames: on one channel, subscribers that negotiated
// permessage-deflate and one that did not get every publication, with
// byte-identical messages once inflated; the compressing subscribers get the
// same compressed bytes (one compressed frame for all); messages clients
// compress are read too. Over plaintext and TLS.
func TestCompressionSharedFrames(t *testing.T) {
	cfg := tethertest.Config()
	cfg.CompressionMinSize = 256
	forEachTransport(t, cfg, func(t *testing.T, e *env) {
		offer := http.Header{"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"}}
		var raws []*rawConn
		for range 2 {
			c := rawDialEnv(t, e, "/ws", offer)
			if got := c.header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(got, "permessage-deflate") {
				t.Fatalf("extension answer %q", got)
			}
			c.writeFrame(0x81, []byte(`{"id":1,"op":"subscribe","channel":"zip"}`))
			if op, p, err := c.readFrame(5 * time.Second); err != nil || op != 1 || !bytes.Contains(p, []byte(`"result"`)) {
				t.Fatalf("subscribe reply: %q %v", p, err)
			}
			raws = append(raws, c)
		}
		zipped := coderDial(t, e, "/ws", websocket.CompressionNoContextTakeover)
		plain := coderDial(t, e, "/ws", websocket.CompressionDisabled)
		for _, c := range []*websocket.Conn{zipped, plain} {
			cl := &client{t: t, c: c}
			cl.subscribe("zip")
		}
		datas := []string{`{"n":1}`, jsonOfSize(1500), jsonOfSize(40_000)}
		for _, d := range datas {
			if status, body := e.postAPI("/api/publish", "", `{"channel":"zip","data":`+d+`}`); status != http.StatusOK {
				t.Fatalf("publish: %d %s", status, body)
			}
		}
		// A message the client compresses: coder/websocket compresses 512 bytes and more.
		big := jsonOfSize(2000)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := zipped.Write(ctx, websocket.MessageText, []byte(`{"id":9,"op":"publish","channel":"zip","data":`+big+`}`)); err != nil {
			t.Fatal(err)
		}
		datas = append(datas, big)
		for i, d := range datas {
			want := readCoderPub(t, plain)
			if !bytes.Contains(want, []byte(d)) {
				t.Fatalf("publication %d: plain subscriber got %.80s...", i, want)
			}
			if got := readCoderPub(t, zipped); !bytes.Equal(got, want) {
				t.Fatalf("publication %d: coder/websocket with compression got %d bytes, plain %d", i, len(got), len(want))
			}
			m0, raw0, z0 := readPub(t, raws[0])
			m1, raw1, _ := readPub(t, raws[1])
			if !bytes.Equal(m0, want) || !bytes.Equal(m1, want) {
				t.Fatalf("publication %d: inflated messages differ from the plain one", i)
			}
			if !bytes.Equal(raw0, raw1) {
				t.Fatalf("publication %d: two compressing subscribers got different frames", i)
			}
			if wantZ := len(want) >= cfg.CompressionMinSize; z0 != wantZ || (z0 && len(raw0) >= len(want)/2) {
				t.Fatalf("publication %d of %d bytes: compressed %v to %d bytes, want compressed %v and under half", i, len(want), z0, len(raw0), wantZ)
			}
		}
		// And the echo endpoint, both ways compressed.
		echo := coderDial(t, e, "/ws/echo", websocket.CompressionNoContextTakeover)
		if err := echo.Write(ctx, websocket.MessageBinary, []byte(big)); err != nil {
			t.Fatal(err)
		}
		if typ, p, err := echo.Read(ctx); err != nil || typ != websocket.MessageBinary || string(p) != big {
			t.Fatalf("compressed echo: %v, %d bytes, %v", typ, len(p), err)
		}
	})
}

// TestCompressionOff: with Compression off, an offer is not answered and
// RSV1 is a protocol error.
func TestCompressionOff(t *testing.T) {
	cfg := tethertest.Config()
	cfg.DisableCompression = true
	e := startEnv(t, cfg, false)
	c := rawDialEnv(t, e, "/ws/echo", http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}})
	if got := c.header.Get("Sec-WebSocket-Extensions"); got != "" {
		t.Fatalf("extension answer %q with compression off", got)
	}
	c.writeFrame(0xC1, deflateMessage([]byte("hello")))
	if got := c.closeCode(5 * time.Second); got != protocol.CloseProtocolError {
		t.Fatalf("close code %d, want 1002", got)
	}
}

// TestHandshakeRefusals: requests that are not a valid opening handshake get
// an HTTP error, and a wrong version says which one to use.
func TestHandshakeRefusals(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	tests := []struct {
		name    string
		header  map[string]string
		status  int
		version string
	}{
		{"no upgrade headers", map[string]string{"Connection": "", "Upgrade": ""}, http.StatusBadRequest, ""},
		{"version 8", map[string]string{"Sec-WebSocket-Version": "8"}, http.StatusUpgradeRequired, "13"},
		{"short key", map[string]string{"Sec-WebSocket-Key": "c2hvcnQ="}, http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tethertest.HTTPURL(n, "/ws"), nil)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Sec-WebSocket-Version") != tt.version {
				t.Fatalf("status %d, version %q; want %d, %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"), tt.status, tt.version)
			}
		})
	}
}

// TestEmbeddedInNetHTTPTLS: mounted in a net/http server that terminates TLS
// itself, the node reads each upgraded connection with a goroutine of its own
// (the event loop cannot take a crypto/tls connection): echo, commands,
// protocol errors closed with their code, and closed connections released.
func TestEmbeddedInNetHTTPTLS(t *testing.T) {
	cfg := tethertest.Config()
	cfg.HTTPAddr = ""
	n := tethertest.NewNode(t, cfg)
	srv := httptest.NewTLSServer(n.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wss := "wss" + strings.TrimPrefix(srv.URL, "https")
	dialOpts := &websocket.DialOptions{HTTPClient: srv.Client()}

	echo, _, err := websocket.Dial(ctx, wss+"/ws/echo", dialOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.CloseNow()
	for _, msg := range []string{"", "over crypto/tls"} {
		if err := echo.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := echo.Read(ctx); err != nil || string(got) != msg {
			t.Fatalf("echo of %q: %q %v", msg, got, err)
		}
	}

	pc, _, err := websocket.Dial(ctx, wss+"/ws", dialOpts)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, c: pc}
	cl.subscribe("embedded")
	if _, err := n.Publish(context.Background(), "embedded", json.RawMessage(`"hi"`)); err != nil {
		t.Fatal(err)
	}
	if m := cl.read(); m.Op != protocol.PushPub || string(m.Data) != `"hi"` {
		t.Fatalf("got %+v", m)
	}
	pc.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the closed connection to be released", func() bool { return n.Connections() == 1 })

	tc, err := tls.Dial("tcp", srv.Listener.Addr().String(), srv.Client().Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	raw := handshake(t, tc, srv.Listener.Addr().String(), "/ws", nil)
	if raw.status != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", raw.status)
	}
	if _, err := tc.Write([]byte{0x81, 0x02, 'h', 'i'}); err != nil { // unmasked
		t.Fatal(err)
	}
	if got := raw.closeCode(5 * time.Second); got != protocol.CloseProtocolError {
		t.Fatalf("close code %d, want 1002", got)
	}
}
