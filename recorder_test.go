package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
)

// recorder is one library client under test: it keeps every publication its
// subscription handed over, every event, and the TCP connection it dialed
// last, so that a test can break it.
type recorder struct {
	c *tclient.Client

	mu     sync.Mutex
	pubs   []*protocol.Publication
	stream []streamItem // pubs and gap events, in the order the subscription delivered them
	events []tclient.Event
	tcp    net.Conn
	want   uint64        // reach closes when a publication with this offset arrives, or a gap up to it
	reach  chan struct{} // closed then
	more   chan struct{} // a publication arrived; capacity 1
	gap    chan tclient.Event
}

// streamItem is a publication or a gap event.
type streamItem struct {
	pub *protocol.Publication
	gap *tclient.Event
}

// newRecorder dials url with a dialer that keeps the TCP connection and a fast
// backoff, and closes the client when the test ends.
func newRecorder(t testing.TB, url string, want uint64) *recorder {
	t.Helper()
	r := &recorder{want: want, reach: make(chan struct{}), more: make(chan struct{}, 1), gap: make(chan tclient.Event, 16)}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			r.mu.Lock()
			r.tcp = c
			r.mu.Unlock()
		}
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tclient.Dial(ctx, url,
		tclient.WithDialer(dial),
		tclient.WithBackoff(5*time.Millisecond, 100*time.Millisecond),
		tclient.WithEventHandler(r.event))
	if err != nil {
		t.Fatalf("tclient.Dial: %v", err)
	}
	r.c = c
	t.Cleanup(func() { _ = c.Close() })
	return r
}

func (r *recorder) event(e tclient.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	if e.Type == tclient.Gap {
		r.stream = append(r.stream, streamItem{gap: &e})
		if e.Position.Offset == r.want { // nothing more to come: the last ones were missed
			close(r.reach)
		}
	}
	r.mu.Unlock()
	if e.Type == tclient.Gap {
		select {
		case r.gap <- e:
		default:
		}
	}
}

func (r *recorder) handle(p *protocol.Publication) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pubs = append(r.pubs, p)
	r.stream = append(r.stream, streamItem{pub: p})
	if p.Offset == r.want {
		close(r.reach)
	}
	select {
	case r.more <- struct{}{}:
	default:
	}
}

// waitCount waits until the recorder has n publications, failing after d.
func (r *recorder) waitCount(t testing.TB, n int, d time.Duration) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		got := len(r.pubs)
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.more:
		case <-timeout.C:
			t.Fatalf("%d publications after %v, want %d", got, d, n)
		}
	}
}

func (r *recorder) subscribe(t testing.TB, channel string) *tclient.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := r.c.Subscribe(ctx, channel, r.handle)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return s
}

// breakTCP closes the client's TCP connection abruptly (RST, no close frame).
func (r *recorder) breakTCP() {
	r.mu.Lock()
	c := r.tcp
	r.mu.Unlock()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	if c != nil {
		_ = c.Close()
	}
}

func (r *recorder) count(typ tclient.EventType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// checkSequence reports the first way pubs differ from epoch's offsets from..to,
// each once and in order, with data {"n":offset}.
func checkSequence(pubs []*protocol.Publication, epoch string, from, to uint64) error {
	if uint64(len(pubs)) != to-from+1 {
		return fmt.Errorf("got %d publications, want %d (offsets %d..%d)", len(pubs), to-from+1, from, to)
	}
	for i, p := range pubs {
		want := from + uint64(i)
		var d struct{ N uint64 }
		if err := json.Unmarshal(p.Data, &d); err != nil {
			return fmt.Errorf("publication %d: data %s: %v", want, p.Data, err)
		}
		if p.Offset != want || p.Epoch != epoch || d.N != want {
			return fmt.Errorf("publication #%d is %s/%d with n=%d, want %s/%d", i, p.Epoch, p.Offset, d.N, epoch, want)
		}
	}
	return nil
}

// waitAll waits until every recorder has reached its offset, or d passes.
func waitAll(t testing.TB, rs []*recorder, d time.Duration) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for i, r := range rs {
		select {
		case <-r.reach:
		case <-timeout.C:
			r.mu.Lock()
			n := len(r.pubs)
			r.mu.Unlock()
			t.Fatalf("client %d has %d publications after %v, want offset %d", i, n, d, r.want)
		}
	}
}

func numbered(n uint64) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)) }

// checkGoroutines fails the test when, after everything it set up is torn
// down, more goroutines run than at its start. Call it first: cleanups run
// last-registered first, so its check runs after the others.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond) // goroutines exiting give no signal
		}
	})
}
