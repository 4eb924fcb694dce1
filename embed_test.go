package tether_test

import (
	"context"
	"encoding/json"
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

// TestEmbeddedInNetHTTP mounts a node's handler in a net/http server: upgraded
// connections move to the node's event loop and work as on `tether serve`.
func TestEmbeddedInNetHTTP(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{}) // the zero Config: no listeners, every limit at its default
	if n.Addr() != nil {
		t.Fatalf("Addr = %v without HTTPAddr", n.Addr())
	}
	mux := http.NewServeMux()
	mux.Handle("/rt/", http.StripPrefix("/rt", n.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/rt/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	cl := &client{t: t, c: c}
	cl.subscribe("embedded")
	if _, err := n.Publish(context.Background(), "embedded", json.RawMessage(`"in-process"`)); err != nil {
		t.Fatal(err)
	}
	if m := cl.read(); m.Op != protocol.PushPub || string(m.Data) != `"in-process"` || m.Offset != 1 {
		t.Fatalf("got %+v", m)
	}
	if got := n.Connections(); got != 1 {
		t.Fatalf("Connections = %d, want 1", got)
	}
	if _, err := n.Publish(context.Background(), "bad channel", json.RawMessage(`1`)); err == nil {
		t.Fatal("Publish accepted an invalid channel")
	}
	if _, err := n.Publish(context.Background(), "ok", json.RawMessage(`{nope`)); err == nil {
		t.Fatal("Publish accepted invalid JSON")
	}
}
