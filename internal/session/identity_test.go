package session

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// lifetimes authenticates any token that parses as a duration, for an
// identity expiring that long after; "never" for one that does not expire.
// It records the header each call saw.
type lifetimes struct {
	mu     sync.Mutex
	header []http.Header
}

func (l *lifetimes) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	l.mu.Lock()
	l.header = append(l.header, c.Header)
	l.mu.Unlock()
	if c.Token == "never" {
		return &auth.Identity{User: "ann"}, nil
	}
	d, err := time.ParseDuration(c.Token)
	if err != nil {
		return nil, auth.ErrUnauthorized
	}
	return &auth.Identity{User: "ann", ExpiresAt: time.Now().Add(d)}, nil
}

// blindLifetimes is lifetimes declaring it reads no header.
type blindLifetimes struct{ lifetimes }

func (*blindLifetimes) IgnoresHeader() {}

// closingConn reports the first disconnect on closed.
type closingConn struct {
	once   sync.Once
	closed chan protocol.Disconnect
}

func (c *closingConn) Format() wire.Format  { return wire.Line }
func (c *closingConn) Write(b []byte) error { return nil }
func (c *closingConn) Close(d protocol.Disconnect) {
	c.once.Do(func() { c.closed <- d })
}

// TestAuthTimer: one timer serves the connect timeout and then the
// identity's expiry, whichever order they come in.
func TestAuthTimer(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, hub.Config{})
	for _, c := range []struct {
		name    string
		timeout time.Duration
		tokens  []string // connect, then refreshes
		want    int      // close code; 0: none within wait
		wait    time.Duration
	}{
		{"no connect", 50 * time.Millisecond, nil, protocol.CloseConnectTimeout, 10 * time.Second},
		{"expiry before the connect timeout", 10 * time.Second, []string{"100ms"}, protocol.CloseTokenExpired, 10 * time.Second},
		// The connect (and refresh) below follow Open at once, but a loaded
		// machine may pause the test between them: where one must come
		// before a timer, that timer gives it half a second.
		{"expiry after the connect timeout", 500 * time.Millisecond, []string{"1s"}, protocol.CloseTokenExpired, 10 * time.Second},
		{"no expiry", 500 * time.Millisecond, []string{"never"}, 0, time.Second},
		{"refreshed to no expiry", 10 * time.Second, []string{"500ms", "never"}, 0, time.Second},
		{"refreshed to later", 10 * time.Second, []string{"50ms", "300ms"}, protocol.CloseTokenExpired, 10 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64, Authenticator: &lifetimes{}, ConnectTimeout: c.timeout}, h, slog.New(slog.DiscardHandler), "t")
			conn := &closingConn{closed: make(chan protocol.Disconnect, 1)}
			start := time.Now()
			s := m.Open(conn)
			defer s.Closed()
			for i, tok := range c.tokens {
				op := protocol.OpRefresh
				if i == 0 {
					op = protocol.OpConnect
				}
				s.Handle([]byte(`{"id":1,"op":"` + op + `","token":"` + tok + `"}`))
			}
			select {
			case d := <-conn.closed:
				if d.Code != c.want {
					t.Fatalf("closed with %d after %v, want %d", d.Code, time.Since(start), c.want)
				}
				if c.name == "expiry after the connect timeout" && time.Since(start) < time.Second {
					t.Errorf("closed after %v, before the expiry", time.Since(start))
				}
			case <-time.After(c.wait):
				if c.want != 0 {
					t.Fatalf("not closed after %v, want %d", c.wait, c.want)
				}
			}
		})
	}
}

// TestPeerHeader: an Authenticator sees the upgrade headers at connect,
// as they were at the upgrade, unless it declares it reads none.
func TestPeerHeader(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, hub.Config{})
	for _, c := range []struct {
		name string
		a    interface {
			auth.Authenticator
			seen() []http.Header
		}
		want string
	}{
		{"reads headers", &lifetimes{}, "v"},
		{"header-blind", &blindLifetimes{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64, Authenticator: c.a}, h, slog.New(slog.DiscardHandler), "t")
			header := http.Header{"X-Test": {"v"}}
			s := m.OpenPeer(&fakeConn{}, Peer{Transport: "websocket", Header: header})
			defer s.Closed()
			header.Set("X-Test", "reused by the transport")
			s.Handle([]byte(`{"id":1,"op":"connect","token":"never"}`))
			seen := c.a.seen()
			if len(seen) != 1 {
				t.Fatalf("%d authentications, want 1", len(seen))
			}
			if got := seen[0].Get("X-Test"); got != c.want {
				t.Errorf("X-Test %q, want %q", got, c.want)
			}
			if c.want == "" && seen[0] != nil {
				t.Errorf("header %v, want nil", seen[0])
			}
		})
	}
}

func (l *lifetimes) seen() []http.Header {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.header
}
