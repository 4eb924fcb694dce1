// Package backendtest holds the contract test suites of package backend's
// interfaces: TestBroker, TestHistory and TestPresence check what the doc
// comments of backend.Broker, backend.History and backend.Presence promise, on
// any implementation. An implementation's tests call them with a constructor:
//
//	func TestHistory(t *testing.T) {
//		backendtest.TestHistory(t, backendtest.HistorySuite{
//			New: func(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
//				h := mystore.New(cfg.Size, cfg.TTL)
//				t.Cleanup(func() { h.Close(context.Background()) })
//				return h
//			},
//		})
//	}
//
// Time: the suites ask for TTLs of a second or more, and give every store a
// Clock. A store that reads it for all its time (the suite's option
// ReadsClock) sees time pass at once when the suite advances it; for one that
// keeps real time (a NATS server's), the suite waits, for a few seconds at most
// per test, and gives expiry a bounded while to happen. A check that must
// come before a TTL runs out, and comes after it on a loaded machine, proves
// nothing: the test runs again with a longer TTL, a few times at most.
//
// The package is for tests only: it must not be imported by production code,
// and must not know any implementation.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

const (
	// ttl is the time to live the suites ask for when they test expiry. A
	// second suits stores whose TTLs have a granularity of a second.
	ttl = time.Second
	// waitTimeout bounds every wait for something the suites expect.
	waitTimeout = 10 * time.Second
	// testTimeout bounds the calls of one test.
	testTimeout = 30 * time.Second
	// expirySlack is how long past its TTL a store that keeps real time may
	// take to drop what expired.
	expirySlack = 5 * time.Second
	// pollEvery is how often the suites look again while they wait for a
	// store that keeps real time.
	pollEvery = 10 * time.Millisecond
	// realTimeTries is how many times raceTTL runs a test on a store that
	// keeps real time, each time with twice the TTL, when a loaded machine
	// makes its checks late.
	realTimeTries = 3
)

// Clock is a clock that moves only when told to. The suites give its Now to
// the stores they create. The zero Clock is not usable: use NewClock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until it is advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time. It is safe for concurrent use.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// timeline makes time pass for a store: by advancing the clock it reads, or
// by waiting when it keeps real time.
type timeline struct {
	clock *Clock
	real  bool
}

func newTimeline(readsClock bool) *timeline {
	return &timeline{clock: NewClock(time.Now()), real: !readsClock}
}

// pass makes d pass for the store.
func (tl *timeline) pass(d time.Duration) {
	if tl.real {
		time.Sleep(d) // the store keeps real time: there is nothing to wait on
		return
	}
	tl.clock.Advance(d)
}

// now returns the store's time: the clock's for a store that reads it, the
// real time for one that keeps real time.
func (tl *timeline) now() time.Time {
	if tl.real {
		return time.Now()
	}
	return tl.clock.Now()
}

// within checks cond once. cond describes what must hold until deadline, a
// TTL after something was given to the store; a store that keeps real time
// may have let it expire when the check came late, so on such a store an
// error past deadline is errLate: the machine was too slow to make the check
// in time, not the store wrong.
func (tl *timeline) within(deadline time.Time, cond func() error) error {
	err := cond()
	if err != nil && tl.real && !time.Now().Before(deadline) {
		return fmt.Errorf("%w: %w", errLate, err)
	}
	return err
}

// await checks cond, which describes what must hold once something expired:
// at once for a store that reads the clock; for one that keeps real time,
// again and again for up to expirySlack. A deadline that is not zero says
// what cond needs as well must still be there: await stops looking at it,
// and past it an error is errLate, as for within.
func (tl *timeline) await(deadline time.Time, cond func() error) error {
	stop := time.Now().Add(expirySlack)
	if !deadline.IsZero() && deadline.Before(stop) {
		stop = deadline
	}
	for {
		err := cond()
		if err == nil || !tl.real {
			return err
		}
		if now := time.Now(); !now.Before(stop) {
			if !deadline.IsZero() && !now.Before(deadline) {
				return fmt.Errorf("%w: %w", errLate, err)
			}
			return err
		}
		time.Sleep(pollEvery)
	}
}

// errLate says a check that had to come within a TTL came after it.
var errLate = errors.New("checked after the TTL it races")

// raceTTL runs steps, a test whose checks race a TTL, on stores whose members
// live d = ttl. On a store that keeps real time a loaded machine may make a
// step late: when steps returns errLate, raceTTL runs them again, on a new
// store with twice the TTL, up to realTimeTries times in all. Any other error
// fails t at once, as does the last errLate.
func raceTTL(t *testing.T, realTime bool, steps func(d time.Duration) error) {
	t.Helper()
	d := ttl
	for try := 1; ; try++ {
		err := steps(d)
		if err == nil {
			return
		}
		if !realTime || !errors.Is(err, errLate) {
			t.Fatal(err)
		}
		if try == realTimeTries {
			t.Fatalf("%v (try %d of %d, with a TTL of %v: a store that keeps its TTLs passes one of them unless the machine is very slow)", err, try, realTimeTries, d)
		}
		t.Logf("with a TTL of %v: %v; again with %v", d, err, 2*d)
		d *= 2
	}
}

// testContext returns a context for one test, cancelled when it ends or after
// testTimeout.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// canceled returns a context that is already cancelled.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
