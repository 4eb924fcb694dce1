package heartbeat

import (
	"sync"
	"testing"
	"time"
)

type peer struct {
	mu              sync.Mutex
	seen            time.Time
	pings, expiries int
}

func (p *peer) LastSeen() time.Time { p.mu.Lock(); defer p.mu.Unlock(); return p.seen }
func (p *peer) Ping()               { p.mu.Lock(); p.pings++; p.mu.Unlock() }
func (p *peer) Expire()             { p.mu.Lock(); p.expiries++; p.mu.Unlock() }

func TestCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	m := New(10*time.Second, 5*time.Second, func() time.Time { return now })
	quiet, chatty := &peer{seen: t0}, &peer{seen: t0}
	m.Add(quiet)
	m.Add(chatty)
	steps := []struct {
		at                 time.Duration
		wantPings          int // of each peer so far
		quietExp, chattyEx int
	}{
		{5 * time.Second, 0, 0, 0},
		{10 * time.Second, 1, 0, 0},
		{14 * time.Second, 1, 0, 0},
		{15*time.Second + 1, 1, 1, 0}, // quiet: silent past interval+timeout
		{20 * time.Second, 2, 1, 0},   // chatty pinged again; quiet no longer watched
		{40 * time.Second, 3, 1, 0},
	}
	for _, s := range steps {
		now = t0.Add(s.at)
		chatty.mu.Lock()
		chatty.seen = now // answers everything at once
		chatty.mu.Unlock()
		m.Check()
		if chatty.pings != s.wantPings || quiet.expiries != s.quietExp || chatty.expiries != s.chattyEx {
			t.Fatalf("at %v: chatty pings %d expiries %d, quiet expiries %d; want %d %d %d",
				s.at, chatty.pings, chatty.expiries, quiet.expiries, s.wantPings, s.chattyEx, s.quietExp)
		}
	}
	if quiet.pings != 1 {
		t.Fatalf("quiet peer pinged %d times, want 1 before it expired", quiet.pings)
	}
	m.Remove(chatty)
	now = now.Add(time.Hour)
	m.Check()
	if chatty.expiries != 0 {
		t.Fatal("a removed peer expired")
	}
}

func TestTick(t *testing.T) {
	if got := New(25*time.Second, 10*time.Second, nil).Tick(); got != 2500*time.Millisecond {
		t.Fatalf("tick %v", got)
	}
	if got := New(time.Millisecond, time.Millisecond, nil).Tick(); got != 5*time.Millisecond {
		t.Fatalf("tick %v, want the 5ms floor", got)
	}
}
