package tether_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestMaxConnsAcrossTransports: MaxConns counts the connections of every
// transport together; each transport refuses past it in its own way; and a
// place freed on one transport can be taken on another.
func TestMaxConnsAcrossTransports(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxConns = 2
	e := startEnv(t, cfg, false)
	ping := protocol.Command{Op: protocol.OpPing}
	e.dialWS().call(ping)
	tcp := e.dialTCP()
	tcp.call(ping)

	if _, err := e.dialGRPC().tryRead(5 * time.Second); statusCode(err) != "ResourceExhausted" {
		t.Fatalf("gRPC stream past the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, status := rawDial(t, e.n, "/ws", nil); status != http.StatusServiceUnavailable {
		t.Fatalf("WebSocket past the limit: status %d, want 503", status)
	}
	lines, _ := readLines(t, e.dialTCPRaw())
	var m message
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil || m.Op != protocol.PushDisconnect || !m.Reconnect {
		t.Fatalf("TCP past the limit: got %q, want one disconnect line with reconnect", lines)
	}

	tcp.w.close()
	waitFor(t, "the TCP connection to be gone", func() bool { return e.n.Connections() == 1 })
	if r := e.dialGRPC().call(ping); r.Error != nil {
		t.Fatalf("gRPC stream in the place TCP left: %+v", r)
	}
}

// TestShutdownDeadline: a client that does not go when told to is dropped
// when Shutdown's context ends, and Shutdown says so.
func TestShutdownDeadline(t *testing.T) {
	cfg := tethertest.Config()
	cfg.CloseTimeout = time.Minute // the server would wait that long for the client's close
	e := startEnv(t, cfg, false)
	nc := e.dialTCPRaw()
	c := &pconn{t: t, name: "tcp", w: &tcpWire{c: nc, r: bufio.NewReader(nc)}}
	c.call(protocol.Command{Op: protocol.OpPing})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.n.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if n := e.n.Connections(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	if m := c.read(); m.Op != protocol.PushDisconnect || m.Code != protocol.CloseGoingAway {
		t.Fatalf("got %+v, want the shutdown disconnect", m)
	}
	if _, err := c.tryRead(5 * time.Second); err == nil {
		t.Fatal("connection still open after Shutdown")
	}
}
