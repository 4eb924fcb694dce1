package heartbeat

import (
	"sync"
	"testing"
	"time"
)

type peer struct {
	mu            sync.Mutex
	seen          time.Time
	pings         []time.Time // when each ping was asked for
	expiries      int
	expiredAt     time.Time
	now           *time.Time // the test's clock
	answersAtOnce bool       // a ping is answered in the same instant
}

func (p *peer) LastSeen() time.Time { p.mu.Lock(); defer p.mu.Unlock(); return p.seen }
func (p *peer) Ping() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pings = append(p.pings, *p.now)
	if p.answersAtOnce {
		p.seen = *p.now
	}
}
func (p *peer) Expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expiries++
	p.expiredAt = *p.now
}

// set is a Source over a mutable list of peers.
type set struct {
	mu    sync.Mutex
	peers []*peer
}

func (s *set) each(f func(Peer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		f(p)
	}
}

func (s *set) remove(p *peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.peers {
		if x == p {
			s.peers = append(s.peers[:i], s.peers[i+1:]...)
			return
		}
	}
}

// TestCheck drives a monitor with a fake clock, checking at its tick: a peer
// that answers is pinged once per interval and never expires; a silent one
// is pinged, then expires exactly once, in the first check past
// interval+timeout of silence, at least timeout after its first ping.
func TestCheck(t *testing.T) {
	const interval, timeout = 10 * time.Second, 5 * time.Second
	t0 := time.Unix(1000, 0)
	now := t0
	var src set
	m := New(interval, timeout, func() time.Time { return now }, src.each)
	var chatty, quiet []*peer
	for range 50 {
		c := &peer{seen: t0, now: &now, answersAtOnce: true}
		q := &peer{seen: t0, now: &now}
		chatty, quiet = append(chatty, c), append(quiet, q)
		src.peers = append(src.peers, c, q)
	}
	tick := m.Tick()
	for now.Sub(t0) < 10*interval {
		now = now.Add(tick)
		m.Check()
	}
	for i, p := range chatty {
		if p.expiries != 0 {
			t.Fatalf("chatty peer %d expired", i)
		}
		if len(p.pings) < 9 || len(p.pings) > 10 {
			t.Fatalf("chatty peer %d pinged %d times in 10 intervals", i, len(p.pings))
		}
		for j := 1; j < len(p.pings); j++ {
			if d := p.pings[j].Sub(p.pings[j-1]); d != interval {
				t.Fatalf("chatty peer %d: pings %v apart, want one interval", i, d)
			}
		}
	}
	for i, p := range quiet {
		if p.expiries != 1 {
			t.Fatalf("quiet peer %d expired %d times, want once", i, p.expiries)
		}
		deadline := t0.Add(interval + timeout)
		if p.expiredAt.Before(deadline) || p.expiredAt.Sub(deadline) >= tick {
			t.Fatalf("quiet peer %d expired at +%v, want the first tick from +%v", i, p.expiredAt.Sub(t0), interval+timeout)
		}
		if len(p.pings) == 0 || p.expiredAt.Sub(p.pings[0]) < timeout || len(p.pings) > 2 {
			t.Fatalf("quiet peer %d: pings %v before expiring at %v, want one or two, the first at least %v before", i, p.pings, p.expiredAt, timeout)
		}
	}
	// Different peers are pinged at different points of the interval.
	points := map[time.Duration]bool{}
	for _, p := range chatty {
		points[p.pings[0].Sub(t0)%interval] = true
	}
	if len(points) < 4 {
		t.Fatalf("50 peers pinged at %d points of the interval, want them spread", len(points))
	}

	// A peer that leaves the source is neither pinged nor expired.
	gone := chatty[0]
	gone.mu.Lock()
	gone.answersAtOnce = false
	n := len(gone.pings)
	gone.mu.Unlock()
	src.remove(gone)
	for range 100 {
		now = now.Add(tick)
		m.Check()
	}
	if len(gone.pings) != n || gone.expiries != 0 {
		t.Fatalf("a removed peer was pinged %d more times and expired %d times", len(gone.pings)-n, gone.expiries)
	}
}

// TestCheckIrregular: checks at uneven times, some further apart than the
// interval, still ping a talking peer in every check whose span holds one of
// its ping points, and expire a silent one once.
func TestCheckIrregular(t *testing.T) {
	const interval, timeout = 100 * time.Millisecond, 50 * time.Millisecond
	t0 := time.Unix(1000, 0)
	now := t0
	var src set
	m := New(interval, timeout, func() time.Time { return now }, src.each)
	p := &peer{seen: t0, now: &now}
	q := &peer{seen: t0, now: &now}
	src.peers = []*peer{p, q}
	steps := []time.Duration{3, 40, 1, 250, 7, 90, 90, 0, 5, 130, 20} // milliseconds between checks
	var total time.Duration
	for _, s := range steps {
		now = now.Add(s * time.Millisecond)
		total += s * time.Millisecond
		p.mu.Lock()
		p.seen = now // p talks all the time
		p.mu.Unlock()
		m.Check()
	}
	if q.expiries != 1 {
		t.Fatalf("silent peer expired %d times, want once", q.expiries)
	}
	// p's ping points: one interval apart from its offset; count the
	// checks whose span holds one.
	iv, off := int64(interval), m.offset(p)
	want, last := 0, t0.UnixNano()
	for _, s := range steps {
		at := last + int64(s*time.Millisecond)
		if floorDiv(at-off, iv) > floorDiv(last-off, iv) {
			want++
		}
		last = at
	}
	if len(p.pings) != want || want < 3 { // the spans hold 3 points whatever the offset
		t.Fatalf("talking peer pinged %d times over %v, want %d (at least 3)", len(p.pings), total, want)
	}
}

func TestTick(t *testing.T) {
	if got := New(25*time.Second, 10*time.Second, nil, nil).Tick(); got != 2500*time.Millisecond {
		t.Fatalf("tick %v", got)
	}
	if got := New(time.Millisecond, time.Millisecond, nil, nil).Tick(); got != 5*time.Millisecond {
		t.Fatalf("tick %v, want the 5ms floor", got)
	}
}

func TestFloorDiv(t *testing.T) {
	for _, c := range []struct{ a, b, want int64 }{
		{7, 2, 3}, {6, 2, 3}, {0, 5, 0}, {-1, 5, -1}, {-5, 5, -1}, {-6, 5, -2},
	} {
		if got := floorDiv(c.a, c.b); got != c.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
