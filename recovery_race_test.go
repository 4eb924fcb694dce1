package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestRecoveryRace subscribes with recovery while publications keep coming,
// many times over. Whatever the interleaving, the client must get the
// subscribe reply first, then pushes, and the reply's publications followed
// by the pushes must be exactly the offsets after the recovery point, each
// once, in order. The hub guarantees it by holding the subscription's live
// publications while the history is read, writing the reply, then flushing
// those above the reply's offset; without that, a publication made meanwhile
// can be pushed before the reply (seen as "push before reply") or fall
// between the two. It runs with the memory broker, which delivers on the
// publishing goroutine, and with one that delivers later on its own
// goroutine, as a broker across a network does.
func TestRecoveryRace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		backends func(t *testing.T) tether.Backends
	}{
		{"memory broker", func(*testing.T) tether.Backends { return tether.Backends{} }},
		{"async broker", func(t *testing.T) tether.Backends {
			c := &calls{}
			return tether.Backends{Broker: newAsyncBroker(t, c), History: newRecordedHistory(t, c)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testRecoveryRace(t, tc.backends(t)) })
	}
}

func testRecoveryRace(t *testing.T, backends tether.Backends) {
	iterations := 300
	if testing.Short() {
		iterations = 50
	}
	const (
		before = 5  // published before the subscribe
		during = 40 // published concurrently with it
		from   = 2  // the client recovers from this offset
	)
	cfg := tethertest.Config()
	cfg.CommandRate = -1 // no limit
	cfg.MaxSubscriptions = iterations
	cfg.Backends = backends
	n := tethertest.NewNode(t, cfg)
	c := dial(t, n)
	for it := range iterations {
		ch := fmt.Sprintf("race:%d", it)
		var epoch string
		for i := uint64(1); i <= before; i++ {
			pos, err := n.Publish(context.Background(), ch, numbered(i))
			if err != nil {
				t.Fatal(err)
			}
			epoch = pos.Epoch
		}
		start := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			<-start
			for i := uint64(before + 1); i <= before+during; i++ {
				if _, err := n.Publish(context.Background(), ch, numbered(i)); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		close(start)
		id := c.send(protocol.Command{Op: protocol.OpSubscribe, Channel: ch, Recover: &protocol.Position{Epoch: epoch, Offset: from}})

		var got []*protocol.Publication
		replied := false
		for len(got) < before+during-from {
			m := c.read()
			switch {
			case m.ID == id:
				if m.Error != nil {
					t.Fatalf("iteration %d: subscribe: %v", it, m.Error)
				}
				var res protocol.SubscribeResult
				if err := json.Unmarshal(m.Result, &res); err != nil {
					t.Fatal(err)
				}
				if !res.Recovered || res.Epoch != epoch {
					t.Fatalf("iteration %d: result %+v, want recovered in epoch %s", it, res, epoch)
				}
				if last := uint64(from + len(res.Publications)); res.Offset != last {
					t.Fatalf("iteration %d: result offset %d but publications up to %d", it, res.Offset, last)
				}
				got = append(got, res.Publications...)
				replied = true
			case m.Op == protocol.PushPub && m.Channel == ch:
				if !replied {
					t.Fatalf("iteration %d: push of offset %d before the subscribe reply", it, m.Offset)
				}
				got = append(got, &protocol.Publication{Channel: m.Channel, Epoch: m.Epoch, Offset: m.Offset, Data: m.Data})
			default:
				t.Fatalf("iteration %d: unexpected %+v", it, m)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if err := checkSequence(got, epoch, from+1, before+during); err != nil {
			t.Fatalf("iteration %d: %v", it, err)
		}
		// Nothing more may come before the reply to a ping: no duplicate.
		if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("iteration %d: ping: %v", it, m.Error)
		}
	}
}
