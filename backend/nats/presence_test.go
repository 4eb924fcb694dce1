package nats_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
)

// TestPresenceOfALostNode checks the members a node added, and never
// removed because it died, disappear from another node's view within the
// presence TTL, while the other node's own members stay.
func TestPresenceOfALostNode(t *testing.T) {
	const ttl = time.Second
	srv := startServer(t)
	cfg := namespace(srv.URL())
	cfg.PresenceTTL = ttl
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
