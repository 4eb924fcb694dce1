package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
)

func newPresence(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
	p := memory.NewPresence(memory.PresenceConfig{TTL: cfg.TTL, Now: cfg.Now})
	t.Cleanup(func() { closeBackend(t, p) })
	return p
}

func TestPresenceContract(t *testing.T) {
	backendtest.TestPresence(t, backendtest.PresenceSuite{New: newPresence, ReadsClock: true})
}

// TestPresenceContractRealTime runs the suite as it runs a store that keeps
// real time, so that the suite's waiting path is itself tested.
func TestPresenceContractRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real TTLs")
	}
	t.Parallel()
	backendtest.TestPresence(t, backendtest.PresenceSuite{
		New: func(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
			cfg.Now = nil
			return newPresence(t, cfg)
		},
	})
}

func newClockPresence(t *testing.T, cfg memory.PresenceConfig) (*memory.Presence, *backendtest.Clock) {
	clock := backendtest.NewClock(time.Now())
	cfg.Now = clock.Now
	p := memory.NewPresence(cfg)
	t.Cleanup(func() { closeBackend(t, p) })
	return p, clock
}

func add(t *testing.T, p backend.Presence, channel string, m backend.Member) {
	t.Helper()
	if err := p.Add(context.Background(), channel, m); err != nil {
		t.Fatalf("Add(%s, %s): %v", channel, m.Client, err)
	}
}

func stats(t *testing.T, p backend.Presence, channel string) backend.PresenceStats {
	t.Helper()
	s, err := p.Stats(context.Background(), channel)
	if err != nil {
		t.Fatalf("Stats(%s): %v", channel, err)
	}
	return s
}

// TestPresenceDefaultTTL checks a member stays a minute by default.
func TestPresenceDefaultTTL(t *testing.T) {
	p, clock := newClockPresence(t, memory.PresenceConfig{})
	add(t, p, "ch", backend.Member{Client: "c1"})
	clock.Advance(time.Minute)
	if got := stats(t, p, "ch"); got.Clients != 1 {
		t.Fatalf("a minute after Add: %+v, want 1 client", got)
	}
	clock.Advance(time.Nanosecond)
	if got := stats(t, p, "ch"); got.Clients != 0 {
		t.Fatalf("past a minute after Add: %+v, want none", got)
	}
}

// TestPresenceSweep checks expired members leave the channels nobody reads,
// by Sweep and by the sweeper, and that Close stops the sweeper.
func TestPresenceSweep(t *testing.T) {
	p, clock := newClockPresence(t, memory.PresenceConfig{TTL: time.Minute, SweepInterval: time.Hour})
	add(t, p, "a", backend.Member{Client: "c1", User: "ann"})
	add(t, p, "b", backend.Member{Client: "c1", User: "ann"})
	clock.Advance(30 * time.Second)
	add(t, p, "b", backend.Member{Client: "c2", User: "bob"})
	clock.Advance(31 * time.Second)
	p.Sweep()
	if p.Len() != 1 {
		t.Fatalf("Len = %d after c1 expired, want 1 (b, with c2)", p.Len())
	}
	if got := stats(t, p, "b"); got != (backend.PresenceStats{Clients: 1, Users: 1}) {
		t.Fatalf("b after c1 expired: %+v, want c2 only", got)
	}

	q, qclock := newClockPresence(t, memory.PresenceConfig{TTL: time.Minute, SweepInterval: time.Millisecond})
	add(t, q, "a", backend.Member{Client: "c1"})
	qclock.Advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() != 0 { // nothing signals a sweep: look until it happened
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d 5s past the TTL with a sweep every millisecond", q.Len())
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestPresenceStatsCheap checks Stats counts without listing: no allocation
// however many members the channel has.
func TestPresenceStatsCheap(t *testing.T) {
	p, _ := newClockPresence(t, memory.PresenceConfig{})
	for i := range 1000 {
		add(t, p, "ch", backend.Member{Client: fmt.Sprint("c", i), User: fmt.Sprint("u", i%10)})
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if s, err := p.Stats(ctx, "ch"); err != nil || s != (backend.PresenceStats{Clients: 1000, Users: 10}) {
			t.Fatalf("Stats = %+v, %v", s, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Stats allocates %v times a call", allocs)
	}
}

// TestPresenceInfoCopied checks the store keeps its own copy of a member's
// Info: the caller may reuse its buffer.
func TestPresenceInfoCopied(t *testing.T) {
	p, _ := newClockPresence(t, memory.PresenceConfig{})
	info := []byte(`{"a":1}`)
	add(t, p, "ch", backend.Member{Client: "c1", Info: info})
	copy(info, `{"b":2}`)
	ms, err := p.Members(context.Background(), "ch")
	if err != nil || len(ms) != 1 || string(ms[0].Info) != `{"a":1}` {
		t.Fatalf("Members = %v, %v; want c1 with the Info it was added with", ms, err)
	}
}
