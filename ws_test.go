package tether_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestEcho: messages come back with their type; shutdown closes with 1001.
func TestEcho(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, tethertest.WSURL(n, "/ws/echo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	tests := []struct {
		name string
		typ  websocket.MessageType
		data []byte
	}{
		{"text", websocket.MessageText, []byte("hello, tether")},
		{"binary", websocket.MessageBinary, []byte{0, 1, 2, 0xff, 0xfe}},
		{"large binary", websocket.MessageBinary, bytes.Repeat([]byte{7}, 40_000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Write(ctx, tt.typ, tt.data); err != nil {
				t.Fatal(err)
			}
			typ, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if typ != tt.typ || !bytes.Equal(got, tt.data) {
				t.Fatalf("echo = %v %d bytes, want %v %d bytes", typ, len(got), tt.typ, len(tt.data))
			}
		})
	}
	go func() { _ = n.Shutdown(ctx) }()
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("echo close on shutdown: %v, want 1001", err)
	}
}

func TestPubSubTwoClients(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	a, b := dial(t, n), dial(t, n)
	const ch = "chat:lobby"
	ra, rb := a.subscribe(ch), b.subscribe(ch)
	if ra.Epoch != rb.Epoch || ra.Offset != 0 || rb.Offset != 0 {
		t.Fatalf("subscribe results %+v and %+v: want one epoch, offset 0", ra, rb)
	}
	const each = 20
	// Each client publishes in turn; both must see all 40 publications, in
	// offset order 1..40, with the epoch of the subscribe.
	for i := range each {
		for j, c := range []*client{a, b} {
			c.send(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(fmt.Sprintf(`{"from":%d,"i":%d}`, j, i))})
		}
	}
	for name, c := range map[string]*client{"a": a, "b": b} {
		want := uint64(1)
		replies := 0
		for want <= 2*each || replies < each {
			m := c.read()
			switch {
			case m.Op == protocol.PushPub:
				if m.Offset != want || m.Epoch != ra.Epoch || m.Channel != ch {
					t.Fatalf("%s: got pub %s/%d in %s, want offset %d in %s", name, m.Epoch, m.Offset, m.Channel, want, ra.Epoch)
				}
				want++
			case m.ID != 0 && m.Error == nil:
				replies++
			default:
				t.Fatalf("%s: unexpected %+v", name, m)
			}
		}
	}
}

func TestAPIPublish(t *testing.T) {
	cfg := tethertest.Config()
	cfg.APIKey = "s3cret"
	n := tethertest.NewNode(t, cfg)
	sub := dial(t, n)
	sub.subscribe("news")
	tests := []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"ok", "s3cret", `{"channel":"news","data":{"v":1}}`, 200, ""},
		{"missing key", "", `{"channel":"news","data":1}`, 401, protocol.ErrUnauthorized},
		{"wrong key", "nope", `{"channel":"news","data":1}`, 401, protocol.ErrUnauthorized},
		{"malformed", "s3cret", `{"channel":`, 400, protocol.ErrBadRequest},
		{"no data", "s3cret", `{"channel":"news"}`, 400, protocol.ErrBadRequest},
		{"bad channel", "s3cret", `{"channel":"","data":1}`, 400, protocol.ErrInvalidChannel},
		{"too large", "s3cret", `{"channel":"news","data":"` + string(bytes.Repeat([]byte("x"), 70_000)) + `"}`, 413, protocol.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), tt.key, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.code == "" {
				var pos protocol.Position
				if err := json.Unmarshal(body, &pos); err != nil || pos.Offset != 1 || pos.Epoch == "" {
					t.Fatalf("body %s: want epoch and offset 1", body)
				}
				if m := sub.read(); m.Op != protocol.PushPub || string(m.Data) != `{"v":1}` || m.Offset != 1 {
					t.Fatalf("subscriber got %+v", m)
				}
				return
			}
			var e struct{ Error protocol.Error }
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tt.code {
				t.Fatalf("body %s: want error code %s", body, tt.code)
			}
		})
	}
}

func TestAPIWithoutKeyAnswersLoopbackOnly(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), "", `{"channel":"x","data":1}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loopback publish without key: %d %s", resp.StatusCode, body)
	}
}

func TestShutdownTellsClientsToReconnect(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	c := dial(t, n)
	c.subscribe("x")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- n.Shutdown(ctx)
	}()
	m := c.read()
	if m.Op != protocol.PushDisconnect || !m.Reconnect || m.Code != protocol.CloseGoingAway {
		t.Fatalf("got %+v, want disconnect push with reconnect and code 1001", m)
	}
	if code := c.closeStatus(); code != websocket.StatusGoingAway {
		t.Fatalf("close status %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, _, err := websocket.Dial(context.Background(), tethertest.WSURL(n, "/ws"), nil); err == nil {
		t.Fatal("dial after shutdown succeeded")
	}
}
