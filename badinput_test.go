package tether_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestBadCommandsGetErrorReplies sends bad commands on one connection: each gets
// an error reply naming its id, and the connection stays usable.
func TestBadCommandsGetErrorReplies(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxSubscriptions = 2
	cfg.MaxChannelLength = 16
	n := tethertest.NewNode(t, cfg)
	c := dial(t, n)
	c.subscribe("dup")
	tests := []struct {
		name   string
		frame  string
		wantID uint64
		code   string
	}{
		{"malformed JSON", `{"id":1,"op":`, 0, protocol.ErrBadRequest},
		{"not an object", `[1,2,3]`, 0, protocol.ErrBadRequest},
		{"missing op", `{"id":2}`, 2, protocol.ErrBadRequest},
		{"unknown op", `{"id":3,"op":"fly"}`, 3, protocol.ErrUnknownOp},
		{"channel of wrong type", `{"id":4,"op":"subscribe","channel":5}`, 4, protocol.ErrBadRequest},
		{"id of wrong type", `{"id":"x","op":"ping"}`, 0, protocol.ErrBadRequest},
		{"empty channel", `{"id":5,"op":"subscribe","channel":""}`, 5, protocol.ErrInvalidChannel},
		{"channel with space", `{"id":6,"op":"subscribe","channel":"a b"}`, 6, protocol.ErrInvalidChannel},
		{"channel too long", `{"id":7,"op":"subscribe","channel":"abcdefghijklmnopq"}`, 7, protocol.ErrInvalidChannel},
		{"publish without data", `{"id":8,"op":"publish","channel":"x"}`, 8, protocol.ErrBadRequest},
		{"publish invalid data", `{"id":9,"op":"publish","channel":"x","data":nope}`, 0, protocol.ErrBadRequest},
		{"duplicate subscribe", `{"id":10,"op":"subscribe","channel":"dup"}`, 10, protocol.ErrAlreadySub},
		{"unsubscribe not subscribed", `{"id":11,"op":"unsubscribe","channel":"other"}`, 11, protocol.ErrNotSubscribed},
		{"negative history limit", `{"id":12,"op":"history","channel":"x","limit":-1}`, 12, protocol.ErrBadRequest},
		{"binary frame of garbage", "\x00\x01", 0, protocol.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw(websocket.MessageText, []byte(tt.frame))
			m := c.read()
			if m.Error == nil || m.Error.Code != tt.code || m.ID != tt.wantID {
				t.Fatalf("reply %+v (error %v), want id %d and error %s", m, m.Error, tt.wantID, tt.code)
			}
			if m.Error.Message == "" {
				t.Fatal("error without a message")
			}
			if r := c.call(protocol.Command{Op: protocol.OpPing}); r.Error != nil {
				t.Fatalf("ping after bad input: %v", r.Error)
			}
		})
	}
	t.Run("too many subscriptions", func(t *testing.T) {
		c.subscribe("second")
		m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "third"})
		if m.Error == nil || m.Error.Code != protocol.ErrTooManySubs {
			t.Fatalf("third subscribe: %+v", m)
		}
	})
}

func TestRateLimit(t *testing.T) {
	cfg := tethertest.Config()
	cfg.CommandRate, cfg.CommandBurst = 1, 3
	n := tethertest.NewNode(t, cfg)
	c := dial(t, n)
	limited := 0
	for range 10 {
		if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil && m.Error.Code == protocol.ErrRateLimited {
			limited++
		}
	}
	if limited < 5 {
		t.Fatalf("%d of 10 pings rate limited with burst 3, want at least 5", limited)
	}
}

// TestBadFramesClose checks the WebSocket-level violations: each closes the
// connection with its code, and the server keeps serving other clients.
func TestBadFramesClose(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxMessageSize = 1024
	n := tethertest.NewNode(t, cfg)
	bystander := dial(t, n)
	bystander.subscribe("room")
	tests := []struct {
		name    string
		b0      byte // FIN, RSV and opcode
		payload []byte
		code    int
	}{
		{"message over the size limit", 0x81, bytes.Repeat([]byte("x"), 4096), protocol.CloseTooBig},
		{"invalid UTF-8 in a text frame", 0x81, []byte("{\"op\":\"ping\",\"x\":\"\xff\xfe\"}"), protocol.CloseInvalidPayload},
		{"reserved bit set", 0xC1, []byte(`{"op":"ping"}`), protocol.CloseProtocolError},
		{"reserved opcode", 0x83, []byte(`{}`), protocol.CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, status := rawDial(t, n, "/ws", nil)
			if status != http.StatusSwitchingProtocols {
				t.Fatalf("handshake status %d", status)
			}
			c.writeFrame(tt.b0, tt.payload)
			if got := c.closeCode(5 * time.Second); got != tt.code {
				t.Fatalf("close code %d, want %d", got, tt.code)
			}
		})
	}
	// The bystander is unaffected.
	if _, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), "", `{"channel":"room","data":"still here"}`); !strings.Contains(string(body), `"offset":1`) {
		t.Fatalf("publish after bad frames: %s", body)
	}
	if m := bystander.read(); m.Op != protocol.PushPub || string(m.Data) != `"still here"` {
		t.Fatalf("bystander got %+v", m)
	}
}

func TestOriginPolicy(t *testing.T) {
	cfg := tethertest.Config()
	cfg.AllowedOrigins = []string{"https://app.example.com"}
	n := tethertest.NewNode(t, cfg)
	tests := []struct {
		name   string
		origin string
		status int
	}{
		{"no origin (non-browser client)", "", http.StatusSwitchingProtocols},
		{"same host", "http://" + n.Addr().String(), http.StatusSwitchingProtocols},
		{"allowed origin", "https://app.example.com", http.StatusSwitchingProtocols},
		{"foreign origin", "https://evil.example.com", http.StatusForbidden},
		{"allowed host, other scheme", "http://app.example.com", http.StatusForbidden},
		{"garbage origin", "::::", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			if _, status := rawDial(t, n, "/ws", h); status != tt.status {
				t.Fatalf("status %d, want %d", status, tt.status)
			}
		})
	}
}

func TestMaxConns(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxConns = 2
	n := tethertest.NewNode(t, cfg)
	dial(t, n)
	dial(t, n)
	if _, status := rawDial(t, n, "/ws", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("third connection: status %d, want 503", status)
	}
}

func TestHistoryOp(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	c := dial(t, n)
	for i := range 5 {
		c.call(protocol.Command{Op: protocol.OpPublish, Channel: "h", Data: json.RawMessage{'0' + byte(i)}})
	}
	m := c.call(protocol.Command{Op: protocol.OpHistory, Channel: "h", Since: &protocol.Position{Offset: 2}, Limit: 2})
	var res protocol.HistoryResult
	if err := json.Unmarshal(m.Result, &res); err != nil {
		t.Fatal(err)
	}
	if res.Offset != 5 || len(res.Publications) != 2 || res.Publications[0].Offset != 3 || string(res.Publications[1].Data) != "3" {
		t.Fatalf("history = %s", m.Result)
	}
}

// TestMaxChannels: a publish or subscribe that would create one channel too
// many is refused with too_many_channels, over the protocol and the API, and
// existing channels keep working.
func TestMaxChannels(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxChannels = 2
	cfg.HistorySize = 1 // a published channel stays, holding its history
	n := tethertest.NewNode(t, cfg)
	c := dial(t, n)
	c.subscribe("one")
	if m := c.call(protocol.Command{Op: protocol.OpPublish, Channel: "two", Data: json.RawMessage(`1`)}); m.Error != nil {
		t.Fatalf("second channel: %v", m.Error)
	}
	for _, cmd := range []protocol.Command{
		{Op: protocol.OpSubscribe, Channel: "three"},
		{Op: protocol.OpPublish, Channel: "three", Data: json.RawMessage(`1`)},
	} {
		if m := c.call(cmd); m.Error == nil || m.Error.Code != protocol.ErrTooManyChans {
			t.Fatalf("%s on a third channel: %+v", cmd.Op, m)
		}
	}
	resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), "", `{"channel":"three","data":1}`)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), protocol.ErrTooManyChans) {
		t.Fatalf("API publish to a third channel: %d %s", resp.StatusCode, body)
	}
	resp, body = postJSON(t, tethertest.HTTPURL(n, "/api/broadcast"), "", `{"channels":["two","three"],"data":1}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"code":"`+protocol.ErrTooManyChans+`"`) {
		t.Fatalf("API broadcast to a third channel: %d %s", resp.StatusCode, body)
	}
	if m := c.call(protocol.Command{Op: protocol.OpPublish, Channel: "two", Data: json.RawMessage(`2`)}); m.Error != nil {
		t.Fatalf("existing channel after refusals: %v", m.Error)
	}
}

// TestAPIAfterShutdown: the HTTP API refuses to publish once Shutdown has
// begun, whoever still holds the handler.
func TestAPIAfterShutdown(t *testing.T) {
	cfg := tethertest.Config()
	cfg.HTTPAddr = ""
	n := tethertest.NewNode(t, cfg)
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	resp, body := postJSON(t, srv.URL+"/api/publish", "", `{"channel":"x","data":1}`)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("publish after Shutdown: %d %s, want 503", resp.StatusCode, body)
	}
}
