package tether_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/tethertest"
)

// chaos is one run of the chaos test: publications at a steady rate to one
// channel with many library clients, while a breaker keeps cutting random
// connections, alternately from the client's side (the client's TCP socket
// closed with a reset) and from the server's (the server's socket dropped with
// a reset, no close frame).
type chaos struct {
	clients  int
	messages uint64
	history  int           // the server's HistorySize
	rate     time.Duration // between publications
	breakGap time.Duration // between two breaks
}

// run returns the clients, once each has received the last publication, and
// the epoch.
func (c chaos) run(t *testing.T) ([]*recorder, string) {
	t.Helper()
	cfg := tethertest.Config()
	cfg.HistorySize = c.history
	n := tethertest.NewNode(t, cfg)
	rs := make([]*recorder, c.clients)
	for i := range rs {
		rs[i] = newRecorder(t, tethertest.WSURL(n, "/ws"), c.messages)
		rs[i].subscribe(t, "chaos")
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var clientBreaks, serverBreaks int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(c.breakGap)
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
	var err error
	tick := time.NewTicker(c.rate)
	for i := uint64(1); i <= c.messages && err == nil; i++ {
		<-tick.C
		p, perr := n.Publish(context.Background(), "chaos", numbered(i))
		switch {
		case perr != nil:
			err = fmt.Errorf("publish %d: %w", i, perr)
		case p.Offset != i:
			err = fmt.Errorf("publish %d got offset %d", i, p.Offset)
		}
		epoch = p.Epoch
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	waitAll(t, rs, 30*time.Second)

	disconnects, recoveries, gaps := 0, 0, 0
	for _, r := range rs {
		disconnects += r.count(tclient.Disconnected)
		recoveries += r.count(tclient.Recovered)
		gaps += r.count(tclient.Gap)
	}
	t.Logf("%d client-side and %d server-side breaks; clients saw %d disconnects, %d recoveries, %d gaps",
		clientBreaks, serverBreaks, disconnects, recoveries, gaps)
	if disconnects < 10 {
		t.Errorf("only %d disconnects: the test did not break enough connections", disconnects)
	}
	if recoveries+gaps < disconnects/2 {
		t.Errorf("%d recoveries and %d gaps for %d disconnects: clients did not resubscribe with recovery", recoveries, gaps, disconnects)
	}
	return rs, epoch
}

// TestChaos: 2,000 numbered messages, 50 clients, connections broken every
// 15ms. History holds everything, so every client must end with offsets
// 1..2000, each once, in order, and never see a gap.
func TestChaos(t *testing.T) {
	checkGoroutines(t)
	c := chaos{clients: 50, messages: 2000, history: 2000, rate: 2 * time.Millisecond, breakGap: 15 * time.Millisecond}
	rs, epoch := c.run(t)
	for i, r := range rs {
		r.mu.Lock()
		err := checkSequence(r.pubs, epoch, 1, c.messages)
		r.mu.Unlock()
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
		if g := r.count(tclient.Gap); g != 0 {
			t.Errorf("client %d saw %d gaps; history covers everything", i, g)
		}
	}
}

// TestChaosShortHistory: the same with a history too short to cover every
// reconnect. Clients then miss publications, but never silently: each hole in
// what a client received is announced by a Gap event just before it, from the
// last offset received, and nothing comes twice or out of order.
func TestChaosShortHistory(t *testing.T) {
	checkGoroutines(t)
	c := chaos{clients: 20, messages: 600, history: 5, rate: 2 * time.Millisecond, breakGap: 10 * time.Millisecond}
	rs, epoch := c.run(t)
	holes := 0
	for i, r := range rs {
		r.mu.Lock()
		stream := r.stream
		r.mu.Unlock()
		// Gaps may come several in a row (broken again before the next
		// publication): they must chain from the last offset received to the
		// one before the next.
		var last uint64
		var gaps []*tclient.Event
		for _, it := range stream {
			if it.gap != nil {
				if g := it.gap; g.Previous.Offset < last || (len(gaps) > 0 && g.Previous != gaps[len(gaps)-1].Position) {
					t.Fatalf("client %d: gap %+v does not follow offset %d and gaps %+v", i, g, last, gaps)
				}
				gaps = append(gaps, it.gap)
				continue
			}
			p := it.pub
			if p.Epoch != epoch || p.Offset <= last {
				t.Fatalf("client %d: %s/%d after offset %d: duplicate or out of order", i, p.Epoch, p.Offset, last)
			}
			if p.Offset != last+1 {
				holes++
				if len(gaps) == 0 || gaps[0].Previous.Offset != last || gaps[len(gaps)-1].Position.Offset != p.Offset-1 {
					t.Fatalf("client %d: offsets %d to %d missed, announced by %+v", i, last+1, p.Offset-1, gaps)
				}
			}
			last, gaps = p.Offset, nil
		}
		if last != c.messages && (len(gaps) == 0 || gaps[len(gaps)-1].Position.Offset != c.messages) {
			t.Fatalf("client %d ended at offset %d, want %d or a gap up to it", i, last, c.messages)
		}
	}
	t.Logf("%d announced holes", holes)
}
