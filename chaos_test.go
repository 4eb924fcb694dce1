package tether_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	tclient "github.com/tetherhq/tether/client"
)

// TestChaos publishes 2,000 numbered messages at a steady rate to a channel
// with 50 library clients while it keeps breaking random connections, from the
// client's side (the client's TCP socket closed with a reset) and from the
// server's (the server's socket dropped, no close frame). Every client must end
// with offsets 1..2000, each once, in order, and never see a gap.
func TestChaos(t *testing.T) {
	const (
		clients  = 50
		messages = 2000
		rate     = 2 * time.Millisecond // between publications: ~4s of traffic
		breakGap = 15 * time.Millisecond
	)
	checkGoroutines(t)
	cfg := testConfig()
	cfg.HistorySize = messages // recovery can always fill the gap: no gap is allowed
	n := startNode(t, cfg)

	rs := make([]*recorder, clients)
	for i := range rs {
		rs[i] = newRecorder(t, wsURL(n, "/ws"), messages)
		rs[i].subscribe(t, "chaos")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var clientBreaks, serverBreaks int
	wg.Add(1)
	go func() { // the breaker: one connection every breakGap, alternating sides
		defer wg.Done()
		tick := time.NewTicker(breakGap)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if i%2 == 0 {
				rs[rand.IntN(len(rs))].breakTCP()
				clientBreaks++
			} else {
				serverBreaks += n.AbortConnections(1)
			}
		}
	}()

	var epoch string
	tick := time.NewTicker(rate)
	for i := uint64(1); i <= messages; i++ {
		<-tick.C
		pos, err := n.Publish("chaos", numbered(i))
		if err != nil {
			t.Errorf("publish %d: %v", i, err)
			break
		}
		if pos.Offset != i {
			t.Errorf("publish %d got offset %d", i, pos.Offset)
		}
		epoch = pos.Epoch
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	waitAll(t, rs, 30*time.Second)

	disconnects, recoveries := 0, 0
	for i, r := range rs {
		r.mu.Lock()
		err := checkSequence(r.pubs, epoch, 1, messages)
		r.mu.Unlock()
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		if g := r.count(tclient.Gap); g != 0 {
			t.Errorf("client %d saw %d gaps; history covers everything", i, g)
		}
		disconnects += r.count(tclient.Disconnected)
		recoveries += r.count(tclient.Recovered)
	}
	t.Logf("%d client-side and %d server-side breaks; clients saw %d disconnects and %d recoveries",
		clientBreaks, serverBreaks, disconnects, recoveries)
	if disconnects < 10 {
		t.Errorf("only %d disconnects: the test did not break enough connections", disconnects)
	}
	if recoveries < disconnects/2 {
		t.Errorf("%d recoveries for %d disconnects: clients did not resubscribe with recovery", recoveries, disconnects)
	}
}
