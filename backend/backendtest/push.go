package backendtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// pushRecorder is a push handler that keeps what it receives, per channel.
type pushRecorder struct {
	mu     sync.Mutex
	got    map[string][]string
	signal chan struct{}
}

func newPushRecorder() *pushRecorder {
	return &pushRecorder{got: make(map[string][]string), signal: make(chan struct{})}
}

func (r *pushRecorder) handle(channel string, payload []byte) {
	r.mu.Lock()
	r.got[channel] = append(r.got[channel], string(payload))
	close(r.signal)
	r.signal = make(chan struct{})
	r.mu.Unlock()
}

// waitLen returns channel's pushes once there are n, failing after
// waitTimeout.
func (r *pushRecorder) waitLen(t *testing.T, channel string, n int) []string {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		got, signal := append([]string(nil), r.got[channel]...), r.signal
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-signal:
		case <-timeout.C:
			t.Fatalf("channel %s: %d pushes after %v, want %d", channel, len(got), waitTimeout, n)
		}
	}
}

// testPush pushes to a channel the node has interest in and to one it has
// none in: the first arrive in order, the second not at all.
func (s BrokerSuite) testPush(t *testing.T) {
	b := s.New(t)
	if err := b.Register(func(*protocol.Publication) {}); err != nil { // a node always does
		t.Fatalf("Register: %v", err)
	}
	pb, ok := b.(backend.PushBroker)
	if !ok {
		t.Skip("the broker is not a backend.PushBroker")
	}
	ctx := testContext(t)
	rec := newPushRecorder()
	if err := pb.RegisterPush(rec.handle); err != nil {
		t.Fatalf("RegisterPush: %v", err)
	}
	if err := b.Subscribe(ctx, "in"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := pb.Push(ctx, "out", []byte(`{"n":0}`)); err != nil {
		t.Fatalf("Push: %v", err)
	}
	const n = 20
	var want []string
	for i := range n {
		p := fmt.Sprintf(`{"n":%d}`, i)
		want = append(want, p)
		if err := pb.Push(ctx, "in", []byte(p)); err != nil {
			t.Fatalf("Push: %v", err)
		}
	}
	got := rec.waitLen(t, "in", n)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pushes %v, want %v", got, want)
	}
	if err := pb.Push(canceled(), "in", []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Errorf("Push with a cancelled context: %v, want context.Canceled", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got["out"]) != 0 {
		t.Errorf("a push to a channel without interest arrived: %v", rec.got["out"])
	}
}
