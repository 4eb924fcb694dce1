package tether_test

import (
	"context"
	"testing"
	"time"

	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestRestart restarts the server (memory store) under subscribed clients.
// They must reconnect by themselves, get recovered:false with the new epoch
// (a Gap event), and lose nothing published after the restart: what came
// before their resubscribe is in the new epoch's history, everything after
// it reaches the handler exactly once, in order.
func TestRestart(t *testing.T) {
	const (
		clients = 5
		first   = 10  // published before the restart
		after   = 200 // published after it, while the clients reconnect
	)
	checkGoroutines(t)
	cfg := tethertest.Config()
	cfg.HistorySize = 1000
	n1 := tethertest.NewNode(t, cfg)
	addr := n1.Addr().String()
	rs := make([]*recorder, clients)
	for i := range rs {
		rs[i] = newRecorder(t, tethertest.WSURL(n1, "/ws"), after)
		rs[i].subscribe(t, "news")
	}
	var epoch1 string
	for i := uint64(1); i <= first; i++ {
		pos, err := n1.Publish(context.Background(), "news", numbered(i))
		if err != nil {
			t.Fatal(err)
		}
		epoch1 = pos.Epoch
	}
	for _, r := range rs {
		r.waitCount(t, first, 10*time.Second)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n1.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	cfg.HTTPAddr = addr
	n2 := tethertest.NewNodeRetry(t, cfg, 5*time.Second)

	var epoch2 string
	tick := time.NewTicker(2 * time.Millisecond)
	for i := uint64(1); i <= after; i++ {
		<-tick.C
		pos, err := n2.Publish(context.Background(), "news", numbered(i))
		if err != nil {
			t.Fatal(err)
		}
		epoch2 = pos.Epoch
	}
	tick.Stop()
	if epoch2 == epoch1 {
		t.Fatalf("epoch %s did not change across the restart", epoch1)
	}
	waitAll(t, rs, 30*time.Second)

	for i, r := range rs {
		var gap tclient.Event
		select {
		case gap = <-r.gap:
		default:
			t.Fatalf("client %d: no gap event", i)
		}
		if gap.Previous != (protocol.Position{Epoch: epoch1, Offset: first}) || gap.Position.Epoch != epoch2 {
			t.Errorf("client %d: gap from %+v to %+v, want from %s/%d to epoch %s", i, gap.Previous, gap.Position, epoch1, first, epoch2)
		}
		if n := r.count(tclient.Gap); n != 1 {
			t.Errorf("client %d: %d gap events, want 1", i, n)
		}
		if n := r.count(tclient.Recovered); n != 0 {
			t.Errorf("client %d: %d recovered events, want 0", i, n)
		}
		k := gap.Position.Offset
		r.mu.Lock()
		before, since := r.pubs[:first], r.pubs[first:]
		if err := checkSequence(before, epoch1, 1, first); err != nil {
			t.Errorf("client %d before the restart: %v", i, err)
		}
		if err := checkSequence(since, epoch2, k+1, after); err != nil {
			t.Errorf("client %d after its resubscribe at %d: %v", i, k, err)
		}
		r.mu.Unlock()
		if k == 0 {
			continue // resubscribed before the first publication: all came live
		}
		// What was published between the restart and the resubscribe is in
		// the new epoch's history, where the gap event points.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h, err := r.c.History(ctx, "news", &protocol.Position{Epoch: epoch2}, int(k))
		cancel()
		if err != nil {
			t.Fatalf("client %d: History: %v", i, err)
		}
		if err := checkSequence(h.Publications, epoch2, 1, k); err != nil {
			t.Errorf("client %d: history up to the resubscribe: %v", i, err)
		}
	}
}
