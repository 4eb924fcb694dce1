package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestPresence: Presence and PresenceStats answer, and a subscription's
// join, leave and occupancy pushes come as events.
func TestPresence(t *testing.T) {
	z, err := namespaces.New(namespaces.Open, []namespaces.Namespace{{Name: "room", JoinLeave: auth.JoinLeaveClients, Occupancy: true}})
	if err != nil {
		t.Fatal(err)
	}
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback, Authorizer: z, Presence: tether.PresenceConfig{Window: 20 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := newEvents()
	a := dial(t, tethertest.WSURL(n, "/ws"), client.WithEventHandler(ev.handle))
	if _, err := a.Subscribe(ctx, "room:1", func(*protocol.Publication) {}); err != nil {
		t.Fatal(err)
	}
	if e := ev.wait(t, client.Join, 5*time.Second); e.Count != 1 || len(e.Members) != 1 || e.Channel != "room:1" {
		t.Fatalf("own join: %+v", e)
	}
	if e := ev.wait(t, client.Occupancy, 5*time.Second); e.Occupancy != (protocol.PresenceStats{Clients: 1}) {
		t.Fatalf("occupancy: %+v", e)
	}

	bev := newEvents()
	b := dial(t, tethertest.WSURL(n, "/ws"), client.WithEventHandler(bev.handle))
	sub, err := b.Subscribe(ctx, "room:1", func(*protocol.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	bID := bev.wait(t, client.Connected, 5*time.Second).Client
	if e := ev.wait(t, client.Join, 5*time.Second); len(e.Members) != 1 || e.Members[0].Client != bID {
		t.Fatalf("b's join: %+v, want client %s", e, bID)
	}
	ms, err := a.Presence(ctx, "room:1")
	if err != nil || len(ms) != 2 {
		t.Fatalf("Presence: %v %v", ms, err)
	}
	if st, err := a.PresenceStats(ctx, "room:1"); err != nil || st != (protocol.PresenceStats{Clients: 2}) {
		t.Fatalf("PresenceStats: %+v %v", st, err)
	}
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if e := ev.wait(t, client.Leave, 5*time.Second); e.Count != 1 || e.Members[0].Client != bID {
		t.Fatalf("b's leave: %+v", e)
	}
	if _, err := a.Presence(ctx, "bad channel"); err == nil {
		t.Fatal("Presence of an invalid channel: no error")
	}
}
