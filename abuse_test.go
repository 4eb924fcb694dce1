package tether_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/auth/jwt"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestSlowloris: connections that never finish their upgrade request do not
// stop others from connecting, and are closed at the handshake timeout.
func TestSlowloris(t *testing.T) {
	cfg := tethertest.Config()
	// Time for the others' upgrades on a loaded machine: one served later
	// than this is cut too.
	cfg.HandshakeTimeout = time.Second
	cfg.MaxConns = 10 // the slow ones hold no connection place
	e := startEnv(t, cfg, false)
	const slow = 30
	conns := make([]net.Conn, slow)
	start := time.Now()
	for i := range conns {
		c, err := net.DialTimeout("tcp", e.n.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for range 3 { // others still get in
		c := e.dialWS()
		c.clientID()
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("slow connection %d still open after %v: %v", i, time.Since(start), err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("slow connections closed after %v, want about the 1s timeout", d)
	}
	want := fmt.Sprintf(`tether_limited_connections_total{limit="handshake_timeout"} %d`, slow)
	// The scraper keeps no idle connection of its own to time out; the count
	// follows the close the client saw.
	scraper := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, want, func() bool {
		resp, err := scraper.Get(e.httpURL("/metrics"))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(body), want)
	})
}

// TestMaxConnsPerIP: past the per-address limit a connection is refused
// with a clear status on every transport, and a closed one frees a place.
func TestMaxConnsPerIP(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxConnsPerIP = 2
	e := startEnv(t, cfg, false)
	first := e.dialWS()
	first.clientID()
	e.dialTCP().clientID()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+e.n.Addr().String()+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third on WebSocket: %v, %v; want 429", resp, err)
	}
	tcp := e.dialTCP()
	if m := tcp.read(); m.Op != protocol.PushDisconnect {
		t.Fatalf("third on TCP: %+v", m)
	}
	stream, err := tetherv1.NewTetherClient(e.grpcConn()).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third on gRPC: %v", err)
	}
	resp, err = http.Get(e.httpURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `tether_limited_connections_total{limit="per_ip"} 3`; !strings.Contains(string(body), want) {
		t.Fatalf("/metrics lacks %s", want)
	}
	first.w.close()
	waitFor(t, "the place freed", func() bool { return e.n.Connections() == 1 })
	e.dialWS().clientID()
}

// TestMaxConnsPerUser: one connection too many for a user gets
// too_many_connections and a close with 4006.
func TestMaxConnsPerUser(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	cfg := tethertest.Config()
	cfg.Authenticator = a
	cfg.MaxConnsPerUser = 1
	e := startEnv(t, cfg, false)
	tok := sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("ann"))
	c1 := e.dialWS()
	checkReply(t, c1.call(protocol.Command{Op: protocol.OpConnect, Token: tok}), "")
	c2 := e.dialTCP()
	checkReply(t, c2.call(protocol.Command{Op: protocol.OpConnect, Token: tok}), protocol.ErrTooManyConns)
	if d := c2.read(); d.Op != protocol.PushDisconnect || d.Code != protocol.CloseTooManyConns {
		t.Fatalf("got %+v, want disconnect %d", d, protocol.CloseTooManyConns)
	}
	c1.w.close()
	waitFor(t, "ann's place freed", func() bool { return e.n.Connections() == 0 })
	checkReply(t, e.dialGRPC().call(protocol.Command{Op: protocol.OpConnect, Token: tok}), "")
}
