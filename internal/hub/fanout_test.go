package hub

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// countSub counts what it is handed, touching only its own fields (a shared
// counter would measure contention, not the fan-out).
type countSub struct {
	pubs  int
	bytes int
}

func (c *countSub) Deliver(b *wire.Batch, from int) {
	c.pubs += len(b.Pubs) - from
	c.bytes += len(b.Frames(wire.WebSocket, from))
}

func newPub(offset uint64) *protocol.Publication {
	p := &protocol.Publication{Channel: "bench", Epoch: "abcdefghij", Offset: offset,
		Data: json.RawMessage(`{"seq":12345,"ts":1700000000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxx"}`)}
	if _, err := p.Encode(); err != nil {
		panic(err)
	}
	return p
}

func makeSubs(n int) ([]subscription, []*countSub) {
	subs := make([]subscription, n)
	counts := make([]*countSub, n)
	for i := range subs {
		counts[i] = &countSub{}
		subs[i] = subscription{s: counts[i], m: &member{epoch: "abcdefghij"}}
	}
	return subs, counts
}

func TestDeliverCountsAndOrder(t *testing.T) {
	tests := []struct {
		name       string
		subs, pubs int
		since      uint64 // every subscriber's since
		want       int    // publications each subscriber gets
	}{
		{"one sub", 1, 1, 0, 1},
		{"below chunk", 100, 3, 0, 3},
		{"split over workers", 5000, 2, 0, 2},
		{"subscribed mid batch", 2000, 4, 2, 2},
		{"subscribed after batch", 700, 4, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, memory.HistoryConfig{}, Config{Workers: 2, ChunkSize: 256})
			subs, counts := makeSubs(tt.subs)
			for i := range subs {
				subs[i].m.since = tt.since
			}
			b := &wire.Batch{}
			for i := range tt.pubs {
				b.Pubs = append(b.Pubs, newPub(uint64(i+1)))
			}
			h.deliver(b, subs)
			for i, c := range counts {
				if c.pubs != tt.want {
					t.Fatalf("subscriber %d got %d publications, want %d", i, c.pubs, tt.want)
				}
			}
			if got := h.Deliveries(); got != int64(tt.subs*tt.want) {
				t.Fatalf("Deliveries = %d, want %d", got, tt.subs*tt.want)
			}
		})
	}
}

// TestFanoutNoAllocationPerDelivery checks the target: the frame is
// built once per publication and shared, so allocations do not grow with the
// subscriber count.
func TestFanoutNoAllocationPerDelivery(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{}, Config{})
	subs, _ := makeSubs(10_000)
	offset := uint64(0)
	allocs := testing.AllocsPerRun(20, func() {
		offset++
		h.deliver(&wire.Batch{Pubs: []*protocol.Publication{newPub(offset)}}, subs)
	})
	// A publication, its encoding, the batch, its frames and a few closures
	// and goroutine hand-offs: a handful, against 10,000 deliveries.
	if allocs > 64 {
		t.Fatalf("%.0f allocations per publication to 10,000 subscribers: want a constant handful", allocs)
	}
}

func TestPublishInOrderPerSubscriber(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{}, Config{Workers: 2, ChunkSize: 8})
	subs := make([]*recorder, 50)
	for i := range subs {
		subs[i] = newRecorder()
		if err := h.Subscribe(ctx, "c", subs[i], nil, func(*protocol.SubscribeResult) {}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 300
	for range n {
		if _, err := h.Publish(ctx, "c", json.RawMessage(`1`), nil); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range subs {
		for j, off := range waitFor(t, s, n) {
			if off != uint64(j+1) {
				t.Fatalf("subscriber %d: publication %d has offset %d", i, j, off)
			}
		}
	}
}

// BenchmarkFanout hands one publication to N subscribers through the worker
// pool, as dispatch does; one op is one publication.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := newHub(b, memory.HistoryConfig{}, Config{})
			subs, _ := makeSubs(n)
			pubs := make([]*protocol.Publication, b.N)
			for i := range pubs {
				pubs[i] = newPub(uint64(i + 1))
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.deliver(&wire.Batch{Pubs: pubs[i : i+1]}, subs)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
