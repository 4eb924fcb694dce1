package session

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/protocol"
)

// tokens authenticates "ann" and "bob" and says "old" has expired.
type tokens struct{}

func (tokens) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	switch c.Token {
	case "ann", "bob":
		return &auth.Identity{User: c.Token, Info: json.RawMessage(`{"name":"` + c.Token + `"}`)}, nil
	case "old":
		return nil, fmt.Errorf("exp in the past: %w", auth.ErrTokenExpired)
	}
	return nil, auth.ErrUnauthorized
}

// onlyOwn lets a user publish to "own:<user>" only, and anyone subscribe.
type onlyOwn struct{}

func (onlyOwn) Authorize(_ context.Context, id *auth.Identity, a auth.Action, channel string) error {
	if a == auth.Publish && (id == nil || channel != "own:"+id.User) {
		return auth.ErrPermissionDenied
	}
	return nil
}

// lastReply decodes the last line c got.
func lastReply(t *testing.T, c *fakeConn) protocol.Reply {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.out) == 0 {
		t.Fatal("no reply")
	}
	var r protocol.Reply
	if err := json.Unmarshal(c.out[len(c.out)-1], &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthHooks(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, hub.Config{})
	m := NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64, Authenticator: tokens{}, Authorizer: onlyOwn{}}, h, slog.New(slog.DiscardHandler), "t")
	tests := []struct {
		name    string
		cmds    []string // sent in order; the last one's reply is checked
		code    string   // its error code, or "" for a result
		content string   // in the result
	}{
		{"before connect", []string{`{"id":1,"op":"subscribe","channel":"a"}`}, protocol.ErrUnauthorized, ""},
		{"ping before connect", []string{`{"id":1,"op":"ping"}`}, "", "{}"},
		{"bad token", []string{`{"id":1,"op":"connect","token":"eve"}`}, protocol.ErrUnauthorized, ""},
		{"expired token", []string{`{"id":1,"op":"connect","token":"old"}`}, protocol.ErrTokenExpired, ""},
		{"still refused after a bad connect", []string{`{"id":1,"op":"connect","token":"eve"}`, `{"id":2,"op":"history","channel":"a"}`}, protocol.ErrUnauthorized, ""},
		{"connect", []string{`{"id":1,"op":"connect","token":"ann"}`}, "", `"user":"ann"`},
		{"allowed publish", []string{`{"id":1,"op":"connect","token":"ann"}`, `{"id":2,"op":"publish","channel":"own:ann","data":1}`}, "", `"offset":1`},
		{"denied publish", []string{`{"id":1,"op":"connect","token":"ann"}`, `{"id":2,"op":"publish","channel":"own:bob","data":1}`}, protocol.ErrPermission, ""},
		{"subscribe", []string{`{"id":1,"op":"connect","token":"bob"}`, `{"id":2,"op":"subscribe","channel":"own:ann"}`}, "", `"epoch"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &fakeConn{}
			s := m.Open(c)
			defer s.Closed()
			for _, cmd := range tt.cmds {
				s.Handle([]byte(cmd))
			}
			r := lastReply(t, c)
			switch {
			case tt.code != "" && (r.Error == nil || r.Error.Code != tt.code):
				t.Fatalf("reply %+v, want error %s", r, tt.code)
			case tt.code == "" && r.Error != nil:
				t.Fatalf("error %v, want a result", r.Error)
			case tt.code == "":
				if b, _ := json.Marshal(r.Result); !strings.Contains(string(b), tt.content) {
					t.Fatalf("result %s, want it to contain %s", b, tt.content)
				}
			}
			if r.Error != nil && strings.Contains(r.Error.Message, "eve") {
				t.Fatalf("the token is in the reply: %q", r.Error.Message)
			}
		})
	}
}

// TestPublicationsCarryIdentity: a publication says who sent it, with the
// identity's user and info.
func TestPublicationsCarryIdentity(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, hub.Config{})
	m := NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64, Authenticator: tokens{}}, h, slog.New(slog.DiscardHandler), "t")
	c := &fakeConn{}
	s := m.Open(c)
	defer s.Closed()
	s.Handle([]byte(`{"id":1,"op":"connect","token":"ann"}`))
	s.Handle([]byte(`{"id":2,"op":"publish","channel":"x","data":1}`))
	res, err := h.History(context.Background(), "x", nil, 0)
	if err != nil || len(res.Publications) != 1 {
		t.Fatalf("history %+v, %v", res, err)
	}
	from := res.Publications[0].From
	if from == nil || from.User != "ann" || from.Client != s.ID() || string(from.Info) != `{"name":"ann"}` {
		t.Fatalf("from = %+v", from)
	}
}
