package session

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// fakeConn records what a session writes.
type fakeConn struct {
	mu     sync.Mutex
	out    [][]byte
	limit  int // bytes before ErrSlowConsumer; 0: none
	size   int
	closed []protocol.Disconnect
}

func (c *fakeConn) Format() wire.Format { return wire.Line }

func (c *fakeConn) Write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit > 0 && c.size+len(b) > c.limit {
		return ErrSlowConsumer
	}
	c.size += len(b)
	c.out = append(c.out, b)
	return nil
}

func (c *fakeConn) Close(d protocol.Disconnect) {
	c.mu.Lock()
	c.closed = append(c.closed, d)
	c.mu.Unlock()
}

func newManager(t *testing.T) (*Manager, *hub.Hub) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, hub.Config{})
	return NewManager(Config{MaxSubscriptions: 4, MaxChannelLength: 64}, h, slog.New(slog.DiscardHandler), "t"), h
}

// TestClosedDuringSubscribe: a session closed while its subscribes are in
// flight leaves no subscription behind in the hub.
func TestClosedDuringSubscribe(t *testing.T) {
	m, h := newManager(t)
	for i := range 200 {
		s := m.Open(&fakeConn{})
		var wg sync.WaitGroup
		for j := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Handle([]byte(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"c%d"}`, j)))
			}()
		}
		if i%2 == 0 {
			s.Closed()
		}
		wg.Wait()
		s.Closed()
	}
	if st := h.Stats(); st.Subscriptions != 0 {
		t.Fatalf("%d subscriptions left after every session closed", st.Subscriptions)
	}
	if m.Len() != 0 {
		t.Fatalf("%d sessions left in the manager", m.Len())
	}
}

// TestSlowConsumerDisconnects: a delivery the connection cannot take closes the
// session with 4001.
func TestSlowConsumerDisconnects(t *testing.T) {
	m, _ := newManager(t)
	conn := &fakeConn{limit: 200}
	s := m.Open(conn)
	s.Handle([]byte(`{"id":1,"op":"subscribe","channel":"c"}`))
	b := &wire.Batch{Pubs: []*protocol.Publication{{Channel: "c", Offset: 1, Data: json.RawMessage(`"` + strings.Repeat("x", 300) + `"`)}}}
	s.Deliver(b, 0)
	if len(conn.closed) != 1 || conn.closed[0].Code != protocol.CloseSlowConsumer {
		t.Fatalf("closed with %+v, want one 4001", conn.closed)
	}
	if m.Stats().SlowConsumers.Load() != 1 {
		t.Fatal("slow consumer not counted")
	}
}

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	t0 := time.Unix(100, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, true}, // the burst of 3
		{0, false},
		{400 * time.Millisecond, false}, // 0.8 of a token at 2 per second
		{500 * time.Millisecond, true},  // 1.0
		{500 * time.Millisecond, false},
		{time.Hour, true}, {time.Hour, true}, {time.Hour, true}, // refilled to the burst, not past it
		{time.Hour, false},
	}
	for i, st := range steps {
		if got := b.take(t0.Add(st.at), 2, 3); got != st.want {
			t.Fatalf("step %d (at %v): %v, want %v", i, st.at, got, st.want)
		}
	}
}

// TestTokenBucketSlowRate: a rate of one command in centuries still lets the
// burst through once, then nothing, without overflowing.
func TestTokenBucketSlowRate(t *testing.T) {
	var b tokenBucket
	now := time.Unix(1<<32, 0)
	for i := range 1000 {
		if got, want := b.take(now, 1e-12, 500), i < 500; got != want {
			t.Fatalf("take %d: %v, want %v", i, got, want)
		}
	}
	if b.take(now.Add(24*time.Hour), 1e-12, 500) {
		t.Fatal("a token came back within a day at 1e-12 per second")
	}
}

// TestSessionSize guards the memory budget of an idle connection (issue 9):
// an anonymous session fits the 96-byte size class; what only authenticated
// sessions need lives behind Session.auth.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 96 {
		t.Fatalf("Session is %d bytes, over the 96-byte size class: move what idle anonymous sessions do not need behind a pointer", n)
	}
}

// TestManagerGet finds sessions by the exact client id it handed out, and
// nothing for any other string.
func TestManagerGet(t *testing.T) {
	m, _ := newManager(t) // ids are "t" and a number in base 36
	var ss []*Session
	for range 40 {
		ss = append(ss, m.Open(&fakeConn{}))
	}
	s := ss[34] // "tz": ids count from 1
	if s.ID() != "tz" {
		t.Fatalf("id %q, want tz", s.ID())
	}
	for _, tc := range []struct {
		id   string
		want *Session
	}{
		{"tz", s},
		{ss[0].ID(), ss[0]},
		{"tZ", nil},               // parses as tz does
		{"t0z", nil},              // so does this
		{"z", nil},                // no prefix
		{"uz", nil},               // another prefix
		{"t", nil},                // no number
		{"t-1", nil},              // not a number
		{"tzzzzzzzzzzzzzzz", nil}, // past uint64
		{"", nil},
	} {
		if got := m.Get(tc.id); got != tc.want {
			t.Errorf("Get(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
	s.Closed()
	if m.Get("tz") != nil || m.Len() != 39 {
		t.Fatalf("after Closed: Get(tz) = %v, Len %d, want nil and 39", m.Get("tz"), m.Len())
	}
}
