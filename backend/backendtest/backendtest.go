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
// per test, and gives expiry a bounded while to happen.
//
// The package is for tests only: it must not be imported by production code,
// and must not know any implementation.
package backendtest

import (
	"context"
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

// expect checks cond, which describes what must hold once something expired:
// at once for a store that reads the clock, within expirySlack for one that
// keeps real time. It fails the test with cond's last error.
func (tl *timeline) expect(t *testing.T, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(expirySlack)
	for {
		err := cond()
		if err == nil {
			return
		}
		if !tl.real || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(pollEvery)
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
