package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
)

// PresenceConfig is what the presence suite asks of a store it creates.
type PresenceConfig struct {
	// TTL is how long a member stays without being added again.
	TTL time.Duration
	// Now is the suite's clock, for stores that read one (PresenceSuite's
	// ReadsClock).
	Now func() time.Time
}

// PresenceSuite says how to test an implementation of backend.Presence.
type PresenceSuite struct {
	// New returns a new, empty store of its own, configured as cfg says, and
	// registers its cleanup with t. Required. The suite closes some stores
	// itself, before their cleanup runs.
	New func(t *testing.T, cfg PresenceConfig) backend.Presence
	// ReadsClock says the stores New returns read cfg.Now for every time they
	// need, expiry included: the suite then makes time pass by advancing the
	// clock instead of waiting.
	ReadsClock bool
}

// TestPresence runs the contract suite of backend.Presence against the stores
// s.New returns.
func TestPresence(t *testing.T, s PresenceSuite) {
	if s.New == nil {
		t.Fatal("backendtest: PresenceSuite.New is nil")
	}
	t.Run("EmptyChannel", s.testEmpty)
	t.Run("AddAndStats", s.testAdd)
	t.Run("AddReplaces", s.testReplace)
	t.Run("Remove", s.testRemove)
	t.Run("ChannelsAreIndependent", s.testPresenceIndependent)
	t.Run("Expiry", s.testExpiry)
	t.Run("Concurrent", s.testPresenceConcurrent)
	t.Run("Canceled", s.testPresenceCanceled)
	t.Run("Closed", s.testPresenceClosed)
	// Stores that are a backend.PresenceTracker; the others skip these.
	t.Run("TrackerJoinLeave", s.testTrackerJoinLeave)
	t.Run("TrackerConcurrentUsers", s.testTrackerConcurrentUsers)
	t.Run("TrackerRefresh", s.testTrackerRefresh)
	t.Run("TrackerCanceledAndClosed", s.testTrackerCanceled)
}

// presenceCase is one test's store and what it needs to drive it.
type presenceCase struct {
	t   *testing.T
	p   backend.Presence
	tl  *timeline
	ctx context.Context
}

// open opens a store for a test that does not test expiry: its members live
// testTimeout, longer than a loaded machine may take to run the test on a
// store that keeps real time.
func (s PresenceSuite) open(t *testing.T) *presenceCase {
	t.Helper()
	return s.openTTL(t, testTimeout)
}

// openTTL opens a store whose members live d.
func (s PresenceSuite) openTTL(t *testing.T, d time.Duration) *presenceCase {
	t.Helper()
	tl := newTimeline(s.ReadsClock)
	p := s.New(t, PresenceConfig{TTL: d, Now: tl.clock.Now})
	if p == nil {
		t.Fatal("PresenceSuite.New returned nil")
	}
	return &presenceCase{t: t, p: p, tl: tl, ctx: testContext(t)}
}

// member returns the member of client id client, of user (empty: anonymous),
// with an info that says which version of it this is.
func member(client, user string, version int) backend.Member {
	return backend.Member{
		Client:      client,
		User:        user,
		Info:        json.RawMessage(fmt.Sprintf(`{"v":%d}`, version)),
		ConnectedAt: time.Date(2026, 1, 2, 3, 4, 5, version, time.UTC),
	}
}

func (c *presenceCase) add(channel string, m backend.Member) {
	c.t.Helper()
	if err := c.p.Add(c.ctx, channel, m); err != nil {
		c.t.Fatalf("Add(%s, %s): %v", channel, m.Client, err)
	}
}

func (c *presenceCase) remove(channel, client string) {
	c.t.Helper()
	if err := c.p.Remove(c.ctx, channel, client); err != nil {
		c.t.Fatalf("Remove(%s, %s): %v", channel, client, err)
	}
}

// check says whether channel's members and stats are exactly want.
func (c *presenceCase) check(channel string, want ...backend.Member) error {
	got, err := c.p.Members(c.ctx, channel)
	if err != nil {
		return fmt.Errorf("Members(%s): %w", channel, err)
	}
	byClient := make(map[string]backend.Member, len(got))
	for _, m := range got {
		if _, dup := byClient[m.Client]; dup {
			return fmt.Errorf("Members(%s) lists %s twice", channel, m.Client)
		}
		byClient[m.Client] = m
	}
	wantStats := backend.PresenceStats{Clients: len(want)}
	users := make(map[string]bool)
	for _, w := range want {
		if w.User != "" && !users[w.User] {
			users[w.User] = true
			wantStats.Users++
		}
		g, ok := byClient[w.Client]
		if !ok {
			return fmt.Errorf("Members(%s) = %s: %s is missing", channel, clients(got), w.Client)
		}
		if g.User != w.User || string(g.Info) != string(w.Info) || !g.ConnectedAt.Equal(w.ConnectedAt) {
			return fmt.Errorf("Members(%s): %s is %+v, want %+v", channel, w.Client, g, w)
		}
	}
	if len(got) != len(want) {
		return fmt.Errorf("Members(%s) = %s, want %d members", channel, clients(got), len(want))
	}
	stats, err := c.p.Stats(c.ctx, channel)
	if err != nil {
		return fmt.Errorf("Stats(%s): %w", channel, err)
	}
	if stats != wantStats {
		return fmt.Errorf("Stats(%s) = %+v, want %+v", channel, stats, wantStats)
	}
	return nil
}

func (c *presenceCase) mustBe(channel string, want ...backend.Member) {
	c.t.Helper()
	if err := c.check(channel, want...); err != nil {
		c.t.Fatal(err)
	}
}

func clients(ms []backend.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Client
	}
	slices.Sort(out)
	return out
}

func (s PresenceSuite) testEmpty(t *testing.T) {
	c := s.open(t)
	c.mustBe("nobody")
}

func (s PresenceSuite) testAdd(t *testing.T) {
	c := s.open(t)
	ms := []backend.Member{member("c1", "ann", 1), member("c2", "ann", 2), member("c3", "bob", 3), member("c4", "", 4), member("c5", "", 5)}
	for _, m := range ms {
		c.add("ch", m)
	}
	c.mustBe("ch", ms...) // 5 clients, 2 users: ann twice, anonymous not counted
}

func (s PresenceSuite) testReplace(t *testing.T) {
	c := s.open(t)
	c.add("ch", member("c1", "ann", 1))
	c.add("ch", member("c2", "ann", 2))
	c.add("ch", member("c3", "bob", 3))
	c.add("ch", member("c1", "carl", 11)) // ann keeps c2
	c.mustBe("ch", member("c1", "carl", 11), member("c2", "ann", 2), member("c3", "bob", 3))
	c.add("ch", member("c2", "carl", 12)) // ann leaves
	c.mustBe("ch", member("c1", "carl", 11), member("c2", "carl", 12), member("c3", "bob", 3))
	c.add("ch", member("c3", "", 13)) // bob leaves, c3 is anonymous
	c.mustBe("ch", member("c1", "carl", 11), member("c2", "carl", 12), member("c3", "", 13))
}

func (s PresenceSuite) testRemove(t *testing.T) {
	c := s.open(t)
	c.add("ch", member("c1", "ann", 1))
	c.add("ch", member("c2", "ann", 2))
	c.add("ch", member("c3", "bob", 3))
	c.remove("ch", "c1")
	c.mustBe("ch", member("c2", "ann", 2), member("c3", "bob", 3))
	c.remove("ch", "c1") // not there: not an error
	c.remove("ch", "nobody")
	c.remove("unknown-channel", "c2")
	c.mustBe("ch", member("c2", "ann", 2), member("c3", "bob", 3))
	c.remove("ch", "c2")
	c.mustBe("ch", member("c3", "bob", 3))
	c.remove("ch", "c3")
	c.mustBe("ch")
	c.add("ch", member("c1", "ann", 4)) // back after leaving
	c.mustBe("ch", member("c1", "ann", 4))
}

func (s PresenceSuite) testPresenceIndependent(t *testing.T) {
	c := s.open(t)
	c.add("a", member("c1", "ann", 1))
	c.add("b", member("c1", "ann", 2)) // one client in two channels
	c.add("b", member("c2", "bob", 3))
	c.remove("a", "c2")
	c.mustBe("a", member("c1", "ann", 1))
	c.mustBe("b", member("c1", "ann", 2), member("c2", "bob", 3))
	c.remove("b", "c1")
	c.mustBe("a", member("c1", "ann", 1))
	c.mustBe("b", member("c2", "bob", 3))
}

// testExpiry refreshes one member and not the others: those expire after the
// TTL, the refreshed one a TTL after its refresh.
func (s PresenceSuite) testExpiry(t *testing.T) {
	raceTTL(t, !s.ReadsClock, func(d time.Duration) error {
		c := s.openTTL(t, d)
		fresh, stale, staleToo := member("c1", "ann", 1), member("c2", "ann", 2), member("c3", "bob", 3)
		added := c.tl.now()
		c.add("ch", fresh)
		c.add("ch", stale)
		c.add("ch", staleToo)
		c.add("other", staleToo)
		c.tl.pass(d * 6 / 10)
		if err := c.tl.within(added.Add(d), func() error { return c.check("ch", fresh, stale, staleToo) }); err != nil {
			return err
		}
		fresh = member("c1", "ann", 11)
		refreshed := c.tl.now()
		c.add("ch", fresh) // refreshes c1's TTL, and replaces it
		c.tl.pass(d * 6 / 10)
		if err := c.tl.await(refreshed.Add(d), func() error { return errors.Join(c.check("ch", fresh), c.check("other")) }); err != nil {
			return err
		}
		c.tl.pass(d * 6 / 10)
		if err := c.tl.await(time.Time{}, func() error { return c.check("ch") }); err != nil {
			return err
		}
		back := c.tl.now()
		c.add("ch", stale) // back after expiring
		return c.tl.within(back.Add(d), func() error { return c.check("ch", stale) })
	})
}

// testPresenceConcurrent adds and removes members of one channel from several
// goroutines while another reads.
func (s PresenceSuite) testPresenceConcurrent(t *testing.T) {
	const writers, each = 8, 25
	c := s.open(t) // no member may expire while the writers run
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ms, err := c.p.Members(c.ctx, "ch")
			if err == nil {
				_, err = c.p.Stats(c.ctx, "ch")
			}
			if err != nil {
				errs <- fmt.Errorf("reading during writes: %w", err)
				return
			}
			if len(ms) > writers*each {
				errs <- fmt.Errorf("reading during writes: %d members, at most %d were added", len(ms), writers*each)
				return
			}
		}
	}()
	want := make(map[string]backend.Member)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := member(fmt.Sprintf("w%d-%d", w, i), fmt.Sprint("u", i%5), i)
				if err := c.p.Add(c.ctx, "ch", m); err != nil {
					errs <- fmt.Errorf("Add: %w", err)
					return
				}
				if i%2 == 1 {
					if err := c.p.Remove(c.ctx, "ch", m.Client); err != nil {
						errs <- fmt.Errorf("Remove: %w", err)
						return
					}
					continue
				}
				mu.Lock()
				want[m.Client] = m
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.mustBe("ch", slices.Collect(maps.Values(want))...)
}

func (s PresenceSuite) testPresenceCanceled(t *testing.T) {
	c := s.open(t)
	c.add("ch", member("c1", "ann", 1))
	if err := c.p.Add(canceled(), "ch", member("c2", "bob", 2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Add with a cancelled context: %v, want context.Canceled", err)
	}
	if err := c.p.Remove(canceled(), "ch", "c1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := c.p.Members(canceled(), "ch"); !errors.Is(err, context.Canceled) {
		t.Errorf("Members with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := c.p.Stats(canceled(), "ch"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stats with a cancelled context: %v, want context.Canceled", err)
	}
	c.mustBe("ch", member("c1", "ann", 1)) // neither added nor removed
}

func (s PresenceSuite) testPresenceClosed(t *testing.T) {
	c := s.open(t)
	closer, ok := c.p.(backend.Closer)
	if !ok {
		t.Skip("the store is not a backend.Closer")
	}
	c.add("ch", member("c1", "ann", 1))
	if err := closer.Close(c.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.p.Add(c.ctx, "ch", member("c2", "bob", 2)); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Add after Close: %v, want backend.ErrClosed", err)
	}
	if err := c.p.Remove(c.ctx, "ch", "c1"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Remove after Close: %v, want backend.ErrClosed", err)
	}
	if _, err := c.p.Members(c.ctx, "ch"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Members after Close: %v, want backend.ErrClosed", err)
	}
	if _, err := c.p.Stats(c.ctx, "ch"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Stats after Close: %v, want backend.ErrClosed", err)
	}
}
