package nats_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	tnats "github.com/tetherhq/tether/backend/nats"
)

// presenceConfig returns a Config of its own on a server of its own, whose
// presence TTL is ttl.
func presenceConfig(t *testing.T, ttl time.Duration) tnats.Config {
	t.Helper()
	cfg := namespace(startServer(t).URL())
	cfg.PresenceTTL = ttl
	return cfg
}

// TestPresenceOfALostNode checks the members a node added, and never
// removed because it died, disappear from another node's view within the
// presence TTL, while the other node's own members stay.
func TestPresenceOfALostNode(t *testing.T) {
	const ttl = time.Second
	cfg := presenceConfig(t, ttl)
	lost, alive := open(t, cfg), open(t, cfg)
	ctx := context.Background()
	for i := range 3 {
		if err := lost.Presence().Add(ctx, "room", backend.Member{Client: fmt.Sprint("lost", i), User: "ann"}); err != nil {
			t.Fatal(err)
		}
	}
	added := time.Now()
	if err := lost.Close(ctx); err != nil { // no Remove: as a killed process
		t.Fatal(err)
	}
	mine := backend.Member{Client: "alive", User: "bob"}
	if err := alive.Presence().Add(ctx, "room", mine); err != nil {
		t.Fatal(err)
	}
	if st, err := alive.Presence().Stats(ctx, "room"); err != nil || st != (backend.PresenceStats{Clients: 4, Users: 2}) {
		t.Fatalf("Stats before the TTL = %+v, %v; want 4 clients, 2 users", st, err)
	}
	for {
		if err := alive.Presence().Add(ctx, "room", mine); err != nil { // refreshed as a live node does
			t.Fatal(err)
		}
		ms, err := alive.Presence().Members(ctx, "room")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 && ms[0].Client == "alive" {
			if gone := time.Since(added); gone < ttl {
				t.Fatalf("the lost node's members went after %v, before the TTL %v", gone, ttl)
			}
			return
		}
		if time.Since(added) > ttl+5*time.Second {
			t.Fatalf("%v after the lost node's last Add, Members = %+v, want only alive", time.Since(added), ms)
		}
		time.Sleep(50 * time.Millisecond) // expiry is the server's clock: nothing to wait on
	}
}

// TestPresenceLargeChannel lists a channel of more members than one batched
// direct get returns, and one of exactly as many.
func TestPresenceLargeChannel(t *testing.T) {
	srv := startServer(t)
	p := open(t, namespace(srv.URL())).Presence()
	ctx := context.Background()
	for _, n := range []int{1024, 1100} {
		channel := fmt.Sprint("big", n)
		for i := range n {
			if err := p.Add(ctx, channel, backend.Member{Client: fmt.Sprint("c", i), User: fmt.Sprint("u", i%10)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.Remove(ctx, channel, "c0"); err != nil {
			t.Fatal(err)
		}
		ms, err := p.Members(ctx, channel)
		if err != nil {
			t.Fatalf("Members of %d: %v", n, err)
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[m.Client] || m.Client == "c0" {
				t.Fatalf("Members of %d lists %s twice or after its removal", n, m.Client)
			}
			seen[m.Client] = true
		}
		if len(ms) != n-1 {
			t.Fatalf("Members of %d after one Remove: %d members", n, len(ms))
		}
		if st, err := p.Stats(ctx, channel); err != nil || st != (backend.PresenceStats{Clients: n - 1, Users: 10}) {
			t.Fatalf("Stats = %+v, %v", st, err)
		}
	}
}

// TestTrackerOfALostNode checks a node that died does not keep its users
// present: once its members expired (the TTL after their last write), the
// last live tab of a user it shared with another node is the user's leave,
// the user's next tab is a join, and the channel's counts, taken again
// from the members when older than the TTL, hold none of the lost node's
// members within two TTLs.
func TestTrackerOfALostNode(t *testing.T) {
	const ttl = time.Second
	cfg := presenceConfig(t, ttl)
	lost, alive := open(t, cfg), open(t, cfg)
	ctx := context.Background()
	join := func(p *tnats.Presence, client, user string) backend.PresenceChange {
		t.Helper()
		c, err := p.Join(ctx, "room", backend.Member{Client: client, User: user})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := join(lost.Presence(), "lost1", "ann"); !c.UserChanged {
		t.Fatalf("ann's first tab: %+v", c)
	}
	join(lost.Presence(), "lost2", "bob")
	if c := join(alive.Presence(), "alive1", "ann"); c.UserChanged || c.Stats != (backend.PresenceStats{Clients: 3, Users: 2}) {
		t.Fatalf("ann's second tab, on the other node: %+v", c)
	}
	died := time.Now()
	if err := lost.Close(ctx); err != nil { // no Leave: as a killed process
		t.Fatal(err)
	}
	for { // keep alive1 alive, as its node does, until lost1 expired
		if err := alive.Presence().Refresh(ctx, "room", []string{"alive1"}); err != nil {
			t.Fatal(err)
		}
		ms, err := alive.Presence().Members(ctx, "room")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 {
			break
		}
		if time.Since(died) > ttl+5*time.Second {
			t.Fatalf("%v after the lost node died, Members = %+v", time.Since(died), ms)
		}
		time.Sleep(50 * time.Millisecond) // expiry is the server's clock: nothing to wait on
	}
	c, err := alive.Presence().Leave(ctx, "room", "alive1")
	if err != nil || !c.Changed || !c.UserChanged {
		t.Fatalf("ann's last live tab left: %+v, %v; want her leave", c, err)
	}
	if c := join(alive.Presence(), "alive2", "ann"); !c.UserChanged {
		t.Fatalf("ann back after her tabs left or expired: %+v; want her join", c)
	}
	for {
		c := join(alive.Presence(), "alive2", "ann") // a refresh: counts without a change
		if c.Stats == (backend.PresenceStats{Clients: 1, Users: 1}) {
			break
		}
		if time.Since(died) > 2*ttl+5*time.Second {
			t.Fatalf("%v after the lost node died, the counts are %+v; want 1 client, 1 user", time.Since(died), c.Stats)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTrackerRefreshKeepsUsers keeps two tabs of a user alive with Refresh
// alone for longer than the TTL: the user's key lives as long as its
// members, so the first tab's leave is silent and the second one's is the
// user's leave.
func TestTrackerRefreshKeepsUsers(t *testing.T) {
	const ttl = time.Second
	cfg := presenceConfig(t, ttl)
	p := open(t, cfg).Presence()
	ctx := context.Background()
	for _, c := range []string{"tab1", "tab2"} {
		if _, err := p.Join(ctx, "room", backend.Member{Client: c, User: "ann"}); err != nil {
			t.Fatal(err)
		}
	}
	tick := time.NewTicker(ttl / 5)
	defer tick.Stop()
	for end := time.Now().Add(5 * ttl / 2); time.Now().Before(end); <-tick.C {
		if err := p.Refresh(ctx, "room", []string{"tab1", "tab2"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []backend.PresenceChange{
		{Changed: true, UserChanged: false, Stats: backend.PresenceStats{Clients: 1, Users: 1}},
		{Changed: true, UserChanged: true, Stats: backend.PresenceStats{}},
	}
	for i, c := range []string{"tab1", "tab2"} {
		got, err := p.Leave(ctx, "room", c)
		if err != nil {
			t.Fatal(err)
		}
		if got.Changed != want[i].Changed || got.UserChanged != want[i].UserChanged || got.Stats != want[i].Stats {
			t.Fatalf("Leave(%s) after %v of refreshes = %+v, want %+v", c, 5*ttl/2, got, want[i])
		}
	}
}
