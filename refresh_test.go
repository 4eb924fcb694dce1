package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// shortTokens returns a node that takes HS256 tokens, and a function
// making a token for ann that expires after ttl.
func shortTokens(t *testing.T) (*env, func(ttl time.Duration) string) {
	t.Helper()
	a, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator = a
	e := startEnv(t, cfg, false)
	return e, func(ttl time.Duration) string {
		return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", gojwt.MapClaims{"sub": "ann", "exp": time.Now().Add(ttl).Unix()})
	}
}

// TestExpiryWithoutRefresh: on every transport, a connection whose token
// expires gets disconnect token_expired with reconnect advice; a refresh
// with another user's token is refused.
func TestExpiryWithoutRefresh(t *testing.T) {
	e, token := shortTokens(t)
	other := sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("bob"))
	cs := e.dialAll()
	for _, c := range cs {
		if m := c.call(protocol.Command{Op: protocol.OpConnect, Token: token(3 * time.Second)}); m.Error != nil {
			t.Fatalf("%s: connect: %v", c.name, m.Error)
		}
		checkReply(t, c.call(protocol.Command{Op: protocol.OpRefresh, Token: other}), protocol.ErrUnauthorized)
	}
	for _, c := range cs {
		d := c.read()
		if d.Op != protocol.PushDisconnect || d.Code != protocol.CloseTokenExpired || !d.Reconnect {
			t.Fatalf("%s: got %+v, want disconnect %d with reconnect", c.name, d, protocol.CloseTokenExpired)
		}
	}
}

// TestRefreshKeepsConnection: the Go client refreshes its token before it
// expires, on the same connection, and its subscription goes on.
func TestRefreshKeepsConnection(t *testing.T) {
	e, token := shortTokens(t)
	var calls atomic.Int64
	var disconnects atomic.Int64
	c, err := tclient.Dial(context.Background(), "ws://"+e.n.Addr().String()+"/ws",
		tclient.WithTokenFunc(func(context.Context) (string, error) { calls.Add(1); return token(3 * time.Second), nil }),
		tclient.WithEventHandler(func(ev tclient.Event) {
			if ev.Type == tclient.Disconnected {
				disconnects.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan uint64, 16)
	if _, err := c.Subscribe(context.Background(), "news", func(p *protocol.Publication) { got <- p.Offset }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two refreshes", func() bool { return calls.Load() >= 3 })
	if _, err := e.n.Publish(context.Background(), "news", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	select {
	case off := <-got:
		if off != 1 {
			t.Fatalf("offset %d", off)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no publication after the refreshes")
	}
	if n := disconnects.Load(); n != 0 {
		t.Fatalf("%d disconnects", n)
	}
}

// TestExpiredClientRecovers: a Go client that cannot refresh is
// disconnected with token_expired at the expiry, reconnects with a fresh
// token and recovers what was published meanwhile.
func TestExpiredClientRecovers(t *testing.T) {
	e, token := shortTokens(t)
	var refuse atomic.Bool // the token source is down
	var mu sync.Mutex
	var reasons []string
	c, err := tclient.Dial(context.Background(), "ws://"+e.n.Addr().String()+"/ws",
		tclient.WithTokenFunc(func(context.Context) (string, error) {
			if refuse.Load() {
				return "", errors.New("token service down")
			}
			return token(2 * time.Second), nil
		}),
		tclient.WithReconnectDelay(func(int) time.Duration { return 20 * time.Millisecond }),
		tclient.WithEventHandler(func(ev tclient.Event) {
			if ev.Type == tclient.Disconnected {
				mu.Lock()
				reasons = append(reasons, ev.Err.Error())
				mu.Unlock()
				refuse.Store(false)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	refuse.Store(true)
	got := make(chan uint64, 64)
	if _, err := c.Subscribe(context.Background(), "news", func(p *protocol.Publication) { got <- p.Offset }); err != nil {
		t.Fatal(err)
	}
	pub := func() {
		if _, err := e.n.Publish(context.Background(), "news", json.RawMessage(`1`)); err != nil {
			t.Error(err)
		}
	}
	pub()
	waitFor(t, "the expiry", func() bool { return !refuse.Load() })
	for range 3 {
		pub() // while the client reconnects, or after
	}
	for want := uint64(1); want <= 4; want++ {
		select {
		case off := <-got:
			if off != want {
				t.Fatalf("offset %d, want %d", off, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("offset %d never came", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reasons) == 0 || !strings.Contains(reasons[0], "token_expired") {
		t.Fatalf("disconnects %q, want token_expired first", reasons)
	}
}
