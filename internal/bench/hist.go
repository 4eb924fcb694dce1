package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency percentiles of a run, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// histShards is a latency histogram many goroutines record into: one HDR
// histogram (1 us to 5 min, 3 significant digits) per shard, each behind its
// own lock.
type histShards struct {
	shards []histShard
}

type histShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep the shards' locks off one cache line
}

func newHist(shards int) *histShards {
	hs := &histShards{shards: make([]histShard, shards)}
	for i := range hs.shards {
		hs.shards[i].h = hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	}
	return hs
}

// record adds one latency to shard i (mod the shard count).
func (hs *histShards) record(i int, d time.Duration) {
	s := &hs.shards[i%len(hs.shards)]
	us := max(d.Microseconds(), 1)
	s.mu.Lock()
	_ = s.h.RecordValue(min(us, s.h.HighestTrackableValue()))
	s.mu.Unlock()
}

// latency merges the shards and returns the percentiles.
func (hs *histShards) latency() Latency {
	all := hdrhistogram.New(1, int64(5*time.Minute/time.Microsecond), 3)
	for i := range hs.shards {
		s := &hs.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: all.TotalCount(),
		P50:   ms(all.ValueAtQuantile(50)),
		P90:   ms(all.ValueAtQuantile(90)),
		P99:   ms(all.ValueAtQuantile(99)),
		P999:  ms(all.ValueAtQuantile(99.9)),
		Max:   ms(all.Max()),
	}
}
