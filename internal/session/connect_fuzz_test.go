package session

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/protocol"
)

// FuzzConnect runs any bytes as the first command of a session on a node
// that authenticates with JWTs, and then a subscribe: there is always a
// reply, and the subscribe succeeds exactly when the first command was a
// successful connect (or refresh never is, before it).
func FuzzConnect(f *testing.F) {
	secret := []byte("fuzz")
	valid, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	for _, s := range []string{
		`{"id":1,"op":"connect","token":"` + valid + `"}`,
		`{"id":1,"op":"connect","token":"x.y.z"}`,
		`{"id":1,"op":"connect"}`,
		`{"id":1,"op":"refresh","token":"` + valid + `"}`,
		`{"id":1,"op":"connect","token":7}`,
		`{"op":"connect","token":"` + valid[:20] + `"}`,
	} {
		f.Add([]byte(s))
	}
	a, err := jwt.New(jwt.Config{HMACSecret: secret})
	if err != nil {
		f.Fatal(err)
	}
	h := newHub(f, memory.HistoryConfig{Size: 10}, hub.Config{})
	m := NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64, Authenticator: a}, h, slog.New(slog.DiscardHandler), "f")
	f.Fuzz(func(t *testing.T, cmd []byte) {
		c := &fakeConn{}
		s := m.Open(c)
		defer s.Closed()
		s.Handle(cmd)
		first := lastReply(t, c)
		s.Handle([]byte(`{"id":99,"op":"subscribe","channel":"x"}`))
		sub := lastReply(t, c)
		var res protocol.ConnectResult
		connected := first.Error == nil && json.Unmarshal(mustJSON(first.Result), &res) == nil && res.User == "ann"
		if (sub.Error == nil) != connected {
			t.Fatalf("first reply %+v, subscribe %+v", first, sub)
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
