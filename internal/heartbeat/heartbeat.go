// Package heartbeat pings many peers from a few shared tickers and expires the
// ones that fall silent. It keeps no goroutine or timer per peer: a peer costs a
// map entry.
//
// It must not do I/O itself: pinging and closing are the peer's job.
package heartbeat

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Peer is something the monitor watches.
type Peer interface {
	// LastSeen returns when the peer last sent anything.
	LastSeen() time.Time
	// Ping asks the peer to send a ping. It must not block.
	Ping()
	// Expire is called once when the peer has been silent too long. It must not block.
	Expire()
}

const shardCount = 16

// Monitor pings every peer each Interval and expires a peer silent for
// Interval+Timeout. All methods are safe for concurrent use.
type Monitor struct {
	interval, timeout time.Duration
	now               func() time.Time
	seed              maphash.Seed
	shards            [shardCount]struct {
		mu    sync.Mutex
		peers map[Peer]int64 // peer -> when it was last pinged, in unix nanoseconds (8 bytes, not a time.Time's 24)
	}
}

// New returns a monitor. now defaults to time.Now.
func New(interval, timeout time.Duration, now func() time.Time) *Monitor {
	if now == nil {
		now = time.Now
	}
	m := &Monitor{interval: interval, timeout: timeout, now: now, seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].peers = make(map[Peer]int64)
	}
	return m
}

func (m *Monitor) shard(p Peer) int {
	return int(maphash.Comparable(m.seed, p) % shardCount)
}

// Add starts watching p.
func (m *Monitor) Add(p Peer) {
	s := &m.shards[m.shard(p)]
	s.mu.Lock()
	s.peers[p] = m.now().UnixNano()
	s.mu.Unlock()
}

// Remove stops watching p.
func (m *Monitor) Remove(p Peer) {
	s := &m.shards[m.shard(p)]
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
}

// Tick returns how often Run checks the peers: a quarter of the shorter of the
// interval and the timeout, at least 5ms.
func (m *Monitor) Tick() time.Duration {
	return max(min(m.interval, m.timeout)/4, 5*time.Millisecond)
}

// Run checks the peers every Tick until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.Tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Check()
		}
	}
}

// Check pings the peers that are due and expires the silent ones.
func (m *Monitor) Check() {
	now := m.now()
	var ping, expire []Peer
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for p, pinged := range s.peers {
			switch {
			case now.Sub(p.LastSeen()) > m.interval+m.timeout:
				expire = append(expire, p)
				delete(s.peers, p)
			case now.Sub(time.Unix(0, pinged)) >= m.interval:
				ping = append(ping, p)
				s.peers[p] = now.UnixNano()
			}
		}
		s.mu.Unlock()
		// Call out without the lock: a peer's Expire may Remove itself.
		for _, p := range expire {
			p.Expire()
		}
		for _, p := range ping {
			p.Ping()
		}
		ping, expire = ping[:0], expire[:0]
	}
}
