// Package heartbeat pings many peers from one shared ticker and expires the
// ones that fall silent. It keeps no goroutine, timer or entry per peer: the
// peers are listed by a Source (the node's connection registry), each peer is
// pinged at a fixed point of every interval derived from its identity, and a
// peer expires in the one check that sees its deadline pass.
//
// It must not do I/O itself: pinging and closing are the peer's job.
package heartbeat

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Peer is something the monitor watches. It must be comparable (a pointer,
// say): its identity places its pings within the interval.
type Peer interface {
	// LastSeen returns when the peer last sent anything.
	LastSeen() time.Time
	// Ping asks the peer to send a ping. It must not block.
	Ping()
	// Expire is called when the peer has been silent too long: once for each
	// time its silence passes the limit. It must not block.
	Expire()
}

// Source calls f for each peer to watch. It may hold locks while it does:
// f neither blocks nor calls a peer's methods other than LastSeen.
type Source func(f func(Peer))

// Monitor pings every peer once each interval and expires a peer silent for
// interval+timeout. All methods are safe for concurrent use.
type Monitor struct {
	interval, timeout time.Duration
	now               func() time.Time
	peers             Source
	seed              maphash.Seed

	mu   sync.Mutex // serialises Check, and guards last
	last int64      // unix nanoseconds of the previous Check
}

// New returns a monitor of the peers listed by peers (nil: none). now
// defaults to time.Now.
func New(interval, timeout time.Duration, now func() time.Time, peers Source) *Monitor {
	if now == nil {
		now = time.Now
	}
	return &Monitor{interval: interval, timeout: timeout, now: now, peers: peers, seed: maphash.MakeSeed(), last: now().UnixNano()}
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

// Check pings the peers whose ping point of an interval has come since the
// previous Check, and expires those whose silence passed interval+timeout
// since then. A peer silent that long was pinged at least timeout before.
func (m *Monitor) Check() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	last := m.last
	if now <= last || m.peers == nil {
		return
	}
	m.last = now
	limit := int64(m.interval + m.timeout)
	var ping, expire []Peer
	m.peers(func(p Peer) {
		deadline := p.LastSeen().UnixNano() + limit
		switch {
		case deadline <= now:
			if deadline > last { // later checks find it past: expired once
				expire = append(expire, p)
			}
		case m.due(p, last, now):
			ping = append(ping, p)
		}
	})
	// Called with no lock of the source held: a peer's Expire may end in its
	// leaving the source.
	for _, p := range expire {
		p.Expire()
	}
	for _, p := range ping {
		p.Ping()
	}
}

// due reports whether p's ping point falls in (last, now]: its points are
// one interval apart, offset within the interval by p's hash, so that the
// pings of many peers are spread over the interval rather than sent at once.
func (m *Monitor) due(p Peer, last, now int64) bool {
	iv := int64(m.interval)
	if iv <= 0 {
		return true
	}
	off := m.offset(p)
	return floorDiv(now-off, iv) > floorDiv(last-off, iv)
}

// offset returns where in the interval p's ping points fall, in nanoseconds
// from a multiple of the interval since the Unix epoch. Call it with an
// interval above zero.
func (m *Monitor) offset(p Peer) int64 {
	return int64(maphash.Comparable(m.seed, p) % uint64(m.interval))
}

// floorDiv is a/b rounded down, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
