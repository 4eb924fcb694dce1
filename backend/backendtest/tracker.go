package backendtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
)

// tracker returns c's store as a backend.PresenceTracker, or skips the test
// when it is not one.
func (c *presenceCase) tracker() backend.PresenceTracker {
	c.t.Helper()
	tr, ok := c.p.(backend.PresenceTracker)
	if !ok {
		c.t.Skip("the store is not a backend.PresenceTracker")
	}
	return tr
}

// change is the part of a backend.PresenceChange the suite compares.
type change struct {
	client               string
	changed, userChanged bool
	stats                backend.PresenceStats
}

func (ch change) String() string {
	return fmt.Sprintf("{member %q changed %v userChanged %v stats %+v}", ch.client, ch.changed, ch.userChanged, ch.stats)
}

func summary(c backend.PresenceChange) change {
	return change{c.Member.Client, c.Changed, c.UserChanged, c.Stats}
}

func (s PresenceSuite) testTrackerJoinLeave(t *testing.T) {
	c := s.open(t)
	tr := c.tracker()
	st := func(clients, users int) backend.PresenceStats {
		return backend.PresenceStats{Clients: clients, Users: users}
	}
	steps := []struct {
		what string
		do   func() (backend.PresenceChange, error)
		want change
	}{
		{"join c1 (ann)", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c1", "ann", 1)) }, change{"c1", true, true, st(1, 1)}},
		{"join c2 (ann's second)", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c2", "ann", 2)) }, change{"c2", true, false, st(2, 1)}},
		{"join c1 again", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c1", "ann", 3)) }, change{"c1", false, false, st(2, 1)}},
		{"join c3 (anonymous)", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c3", "", 4)) }, change{"c3", true, true, st(3, 1)}},
		{"join c4 (bob)", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c4", "bob", 5)) }, change{"c4", true, true, st(4, 2)}},
		{"leave c1 (ann keeps c2)", func() (backend.PresenceChange, error) { return tr.Leave(c.ctx, "ch", "c1") }, change{"c1", true, false, st(3, 2)}},
		{"leave c2 (ann's last)", func() (backend.PresenceChange, error) { return tr.Leave(c.ctx, "ch", "c2") }, change{"c2", true, true, st(2, 1)}},
		{"leave c2 again", func() (backend.PresenceChange, error) { return tr.Leave(c.ctx, "ch", "c2") }, change{"", false, false, st(2, 1)}},
		{"leave c3 (anonymous)", func() (backend.PresenceChange, error) { return tr.Leave(c.ctx, "ch", "c3") }, change{"c3", true, true, st(1, 1)}},
		{"leave from another channel", func() (backend.PresenceChange, error) { return tr.Leave(c.ctx, "other", "c4") }, change{"", false, false, st(0, 0)}},
		{"join c2 (ann back)", func() (backend.PresenceChange, error) { return tr.Join(c.ctx, "ch", member("c2", "ann", 6)) }, change{"c2", true, true, st(2, 2)}},
	}
	for _, step := range steps {
		got, err := step.do()
		if err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		if summary(got) != step.want {
			t.Fatalf("%s: %v, want %v", step.what, summary(got), step.want)
		}
	}
	c.mustBe("ch", member("c4", "bob", 5), member("c2", "ann", 6))
}

// testTrackerConcurrentUsers joins and leaves several clients of one user at
// once, round after round: exactly one Join and one Leave per round say the
// user changed.
func (s PresenceSuite) testTrackerConcurrentUsers(t *testing.T) {
	const rounds, tabs = 20, 6
	c := s.open(t) // no member may expire while the rounds run
	tr := c.tracker()
	for r := range rounds {
		for _, join := range []bool{true, false} {
			var wg sync.WaitGroup
			results := make([]backend.PresenceChange, tabs)
			errs := make([]error, tabs)
			for i := range tabs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := fmt.Sprint("tab", i)
					if join {
						results[i], errs[i] = tr.Join(c.ctx, "ch", member(client, "ann", r))
					} else {
						results[i], errs[i] = tr.Leave(c.ctx, "ch", client)
					}
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			firsts := 0
			for _, res := range results {
				if !res.Changed {
					t.Fatalf("round %d (join %v): %v did not change the members", r, join, summary(res))
				}
				if res.UserChanged {
					firsts++
				}
			}
			if firsts != 1 {
				t.Fatalf("round %d (join %v): %d of %d concurrent changes of one user say the user changed, want 1", r, join, firsts, tabs)
			}
		}
	}
	c.mustBe("ch")
}

// testTrackerRefresh refreshes one member and a client that is not there:
// the first outlives the others, the second is not added.
func (s PresenceSuite) testTrackerRefresh(t *testing.T) {
	raceTTL(t, !s.ReadsClock, func(d time.Duration) error {
		c := s.openTTL(t, d)
		tr := c.tracker()
		kept, dropped := member("c1", "ann", 1), member("c2", "bob", 2)
		added := c.tl.now()
		c.add("ch", kept)
		c.add("ch", dropped)
		c.tl.pass(d * 6 / 10)
		refreshed := c.tl.now()
		if err := tr.Refresh(c.ctx, "ch", []string{"c1", "ghost"}); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		if err := tr.Refresh(c.ctx, "nobody", []string{"c1"}); err != nil {
			t.Fatalf("Refresh of an empty channel: %v", err)
		}
		if err := c.tl.within(added.Add(d), func() error { return c.check("ch", kept, dropped) }); err != nil {
			return err
		}
		c.tl.pass(d * 6 / 10)
		return c.tl.await(refreshed.Add(d), func() error { return errors.Join(c.check("ch", kept), c.check("nobody")) })
	})
}

func (s PresenceSuite) testTrackerCanceled(t *testing.T) {
	c := s.open(t)
	tr := c.tracker()
	c.add("ch", member("c1", "ann", 1))
	if _, err := tr.Join(canceled(), "ch", member("c2", "bob", 2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Join with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := tr.Leave(canceled(), "ch", "c1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Leave with a cancelled context: %v, want context.Canceled", err)
	}
	if err := tr.Refresh(canceled(), "ch", []string{"c1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Refresh with a cancelled context: %v, want context.Canceled", err)
	}
	c.mustBe("ch", member("c1", "ann", 1))
	closer, ok := c.p.(backend.Closer)
	if !ok {
		return
	}
	if err := closer.Close(c.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := tr.Join(c.ctx, "ch", member("c2", "bob", 2)); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Join after Close: %v, want backend.ErrClosed", err)
	}
	if _, err := tr.Leave(c.ctx, "ch", "c1"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Leave after Close: %v, want backend.ErrClosed", err)
	}
	if err := tr.Refresh(c.ctx, "ch", []string{"c1"}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Refresh after Close: %v, want backend.ErrClosed", err)
	}
}
