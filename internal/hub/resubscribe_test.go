package hub

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// logSub records, in order, the offsets delivered to it and the subscribe
// replies it got: the recovered publications' offsets, then -1 (recovered) or
// -2 (not), then the reply's offset.
type logSub struct {
	mu  sync.Mutex
	log []int64
}

func (s *logSub) Deliver(b *wire.Batch, from int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range b.Pubs[from:] {
		s.log = append(s.log, int64(p.Offset))
	}
}

func (s *logSub) reply(res *protocol.SubscribeResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range res.Publications {
		s.log = append(s.log, int64(p.Offset))
	}
	marker := int64(-2)
	if res.Recovered {
		marker = -1
	}
	s.log = append(s.log, marker, int64(res.Offset))
}

// TestResubscribeNoStaleDelivery unsubscribes and resubscribes (with
// recovery) while publications flow. A batch already on its way to the old
// subscription must not reach the subscriber after the new subscribe reply:
// after each reply, offsets continue from the reply's offset, once each.
func TestResubscribeNoStaleDelivery(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10000}, Config{})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = h.Publish(ctx, "ch", json.RawMessage("1"), nil)
		}
	}()
	s := &logSub{}
	var epoch string
	for range 2000 {
		var rec *protocol.Position
		s.mu.Lock()
		if n := len(s.log); n > 0 {
			rec = &protocol.Position{Epoch: epoch, Offset: uint64(s.log[n-1])}
		}
		s.mu.Unlock()
		err := h.Subscribe(ctx, "ch", s, rec, func(res *protocol.SubscribeResult) {
			epoch = res.Epoch
			s.reply(res)
		})
		if err != nil {
			t.Fatal(err)
		}
		h.Unsubscribe(ctx, "ch", s)
	}
	close(stop)
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	var last int64
	for i := 0; i < len(s.log); i++ {
		switch v := s.log[i]; {
		case v < 0: // a reply: recovered means it brought everything up to its offset
			r := s.log[i+1]
			if v == -1 && r != last {
				t.Fatalf("entry %d: recovered reply at %d, but publications stop at %d", i, r, last)
			}
			last = r
			i++
		case v != last+1:
			t.Fatalf("entry %d: offset %d after %d: stale or duplicate delivery; log around: %v", i, v, last, s.log[max(0, i-10):min(len(s.log), i+10)])
		default:
			last = v
		}
	}
}
