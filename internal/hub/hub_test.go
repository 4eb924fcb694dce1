package hub

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// recorder is a Subscriber that keeps the offsets and frames it is given.
type recorder struct {
	mu      sync.Mutex
	offsets []uint64
	frames  []byte
	poke    chan struct{} // receives a value after each delivery
}

func newRecorder() *recorder { return &recorder{poke: make(chan struct{}, 1)} }

func (r *recorder) Deliver(b *wire.Batch, from int) {
	r.mu.Lock()
	for _, p := range b.Pubs[from:] {
		r.offsets = append(r.offsets, p.Offset)
	}
	r.frames = append(r.frames, b.Frames(wire.Line, from)...)
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func (r *recorder) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.offsets...)
}

func data(i int) json.RawMessage { return json.RawMessage(fmt.Sprint(i)) }

func subscribe(t *testing.T, h *Hub, ch string, s Subscriber, rec *protocol.Position) *protocol.SubscribeResult {
	t.Helper()
	var res *protocol.SubscribeResult
	if err := h.Subscribe(ctx, ch, s, rec, func(r *protocol.SubscribeResult) { res = r }); err != nil {
		t.Fatal(err)
	}
	return res
}

// waitFor waits until the recorder has n offsets, or fails after 5s.
func waitFor(t *testing.T, r *recorder, n int) []uint64 {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		if got := r.got(); len(got) >= n {
			return got
		}
		select {
		case <-r.poke:
		case <-timeout:
			t.Fatalf("got %d of %d deliveries", len(r.got()), n)
		}
	}
}

func TestRecover(t *testing.T) {
	var now time.Time
	h := newHub(t, memory.HistoryConfig{Size: 5, TTL: time.Minute, Now: func() time.Time { return now }}, Config{Recoverable: true})
	holder := newRecorder() // keeps the channel alive
	res := subscribe(t, h, "c", holder, nil)
	epoch := res.Epoch
	for i := 1; i <= 8; i++ { // offsets 1..8; history keeps 4..8
		if _, err := h.Publish(ctx, "c", data(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		pos       protocol.Position
		recovered bool
		offsets   []uint64
	}{
		{"up to date", protocol.Position{Epoch: epoch, Offset: 8}, true, nil},
		{"gap in history", protocol.Position{Epoch: epoch, Offset: 5}, true, []uint64{6, 7, 8}},
		{"oldest kept", protocol.Position{Epoch: epoch, Offset: 3}, true, []uint64{4, 5, 6, 7, 8}},
		{"gap older than history", protocol.Position{Epoch: epoch, Offset: 2}, false, nil},
		{"other epoch", protocol.Position{Epoch: "x", Offset: 8}, false, nil},
		{"offset from the future", protocol.Position{Epoch: epoch, Offset: 9}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := subscribe(t, h, "c", newRecorder(), &tt.pos)
			if r.Recovered != tt.recovered || r.Epoch != epoch || r.Offset != 8 || !r.Recoverable {
				t.Fatalf("result %+v, want recovered=%v at %s/8", r, tt.recovered, epoch)
			}
			var got []uint64
			for _, p := range r.Publications {
				got = append(got, p.Offset)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.offsets) {
				t.Fatalf("publications %v, want %v", got, tt.offsets)
			}
		})
	}
	t.Run("expired by TTL", func(t *testing.T) {
		now = now.Add(2 * time.Minute)
		r := subscribe(t, h, "c", newRecorder(), &protocol.Position{Epoch: epoch, Offset: 5})
		if r.Recovered {
			t.Fatalf("recovered from expired history: %+v", r)
		}
	})
}

// TestDeliveryOrderUnderConcurrency: concurrent publishers and subscribers
// joining midway; each subscriber sees a contiguous run of offsets from just
// after its subscribe result to the end, whatever the chunking.
func TestDeliveryOrderUnderConcurrency(t *testing.T) {
	for _, tc := range []struct{ chunk, batchBytes int }{{1, 0}, {7, 0}, {512, 0}, {7, 200}} {
		chunk := tc.chunk
		t.Run(fmt.Sprint("chunk ", chunk, " batch bytes ", tc.batchBytes), func(t *testing.T) {
			h := newHub(t, memory.HistoryConfig{Size: 10}, Config{Workers: 3, ChunkSize: chunk, MaxBatchBytes: tc.batchBytes})
			const pubs = 400
			type sub struct {
				r    *recorder
				from uint64
			}
			var subs []sub
			var mu sync.Mutex
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range pubs / 4 {
						if _, err := h.Publish(ctx, "c", data(w*1000+i), nil); err != nil {
							t.Error(err)
						}
						if i%10 == 0 {
							r := newRecorder()
							_ = h.Subscribe(ctx, "c", r, nil, func(res *protocol.SubscribeResult) {
								mu.Lock()
								subs = append(subs, sub{r, res.Offset})
								mu.Unlock()
							})
						}
					}
				}()
			}
			wg.Wait()
			for _, s := range subs {
				got := waitFor(t, s.r, int(pubs-s.from))
				for i, off := range got {
					if off != s.from+uint64(i)+1 {
						t.Fatalf("subscriber from %d got %v", s.from, got)
					}
				}
			}
		})
	}
}

func TestFramesShareBytes(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{}, Config{})
	a, b := newRecorder(), newRecorder()
	subscribe(t, h, "c", a, nil)
	subscribe(t, h, "c", b, nil)
	h.Publish(ctx, "c", data(1), nil)
	waitFor(t, a, 1)
	waitFor(t, b, 1)
	hist, err := h.History(ctx, "c", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"op":"pub","channel":"c","epoch":"` + hist.Epoch + `","offset":1,"data":1}` + "\n"
	if string(a.frames) != want || string(b.frames) != want {
		t.Fatalf("frames %q and %q, want %q", a.frames, b.frames, want)
	}
}

func TestChannelsAreRemovedWhenEmpty(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 0}, Config{})
	r := newRecorder()
	subscribe(t, h, "a", r, nil)
	h.Publish(ctx, "b", data(1), nil) // nobody listens, no history: nothing kept
	if st := h.Stats(); st.Channels != 1 || st.Subscriptions != 1 {
		t.Fatalf("stats %+v, want 1 channel and 1 subscription", st)
	}
	if !h.Unsubscribe(ctx, "a", r) || h.Unsubscribe(ctx, "a", r) {
		t.Fatal("Unsubscribe should succeed once")
	}
	if st := h.Stats(); st.Channels != 0 {
		t.Fatalf("stats %+v after unsubscribe, want no channels", st)
	}
}

// TestBatchLen: a batch stops before the publication that would take it past
// MaxBatchBytes, but always holds one.
func TestBatchLen(t *testing.T) {
	var pending []*protocol.Publication
	for i := range 5 {
		p := &protocol.Publication{Channel: "c", Epoch: "e", Offset: uint64(i + 1), Data: json.RawMessage(`"` + strings.Repeat("x", 100) + `"`)}
		if _, err := p.Encode(); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, p)
	}
	one, _ := pending[0].Encode()
	frame := len(one) + 10
	tests := []struct{ max, want int }{
		{0, 5},           // no cap
		{1, 1},           // smaller than one: still one
		{frame, 1},       // exactly one
		{2*frame + 1, 2}, // two and a bit
		{100 * frame, 5}, // all
	}
	for _, tt := range tests {
		h := &Hub{cfg: Config{MaxBatchBytes: tt.max}}
		if got := h.batchLen(pending); got != tt.want {
			t.Errorf("MaxBatchBytes %d: batch of %d, want %d", tt.max, got, tt.want)
		}
	}
}
