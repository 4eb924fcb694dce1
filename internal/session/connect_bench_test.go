package session

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
)

// BenchmarkConnect: a session's life as a bench client lives it (open,
// connect, subscribe, close), without and with an HS256 token: what
// authentication adds to a connection's CPU on the server.
func BenchmarkConnect(b *testing.B) {
	secret := []byte("bench-secret-bench-secret-bench-secret")
	tok, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	a, _ := jwt.New(jwt.Config{HMACSecret: secret})
	header := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
	for _, c := range []struct {
		name string
		cfg  Config
		cmd  string
	}{
		{"connect", Config{}, `{"id":2,"op":"connect"}`},
		{"hs256", Config{Authenticator: a, ConnectTimeout: 10 * time.Second}, `{"id":2,"op":"connect","token":"` + tok + `"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newHub(b, memory.HistoryConfig{Size: 10}, hub.Config{})
			c.cfg.MaxSubscriptions, c.cfg.MaxChannelLength = 4, 64
			m := NewManager(c.cfg, h, slog.New(slog.DiscardHandler), "b")
			connect, sub := []byte(c.cmd), []byte(`{"id":1,"op":"subscribe","channel":"x"}`)
			b.ReportAllocs()
			for b.Loop() {
				s := m.OpenPeer(&discardConn{}, Peer{Transport: "websocket", RemoteAddr: "127.0.0.1:5000", Header: header})
				s.Handle(connect)
				s.Handle(sub)
				s.Closed()
			}
		})
	}
}
