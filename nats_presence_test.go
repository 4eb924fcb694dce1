package tether_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/auth/namespaces"
	tnats "github.com/tetherhq/tether/backend/nats"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// natsPresenceNode starts a node with presence (namespace room, join_leave
// users) on its own NATS backend at url, whose presence TTL is ttl, and
// returns it with the backend: closing the backend is how a test kills the
// node as far as the others can tell (it can no longer refresh or remove
// its members).
func natsPresenceNode(t *testing.T, url string, ttl time.Duration) (*env, *tnats.Backend) {
	t.Helper()
	b, err := tnats.Open(context.Background(), tnats.Config{URL: url, HistorySize: 100, PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	a, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret), AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	z, err := namespaces.New(namespaces.Secure, []namespaces.Namespace{{Name: "room", JoinLeave: auth.JoinLeaveUsers}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer = a, z
	cfg.Presence = tether.PresenceConfig{Window: 50 * time.Millisecond, RefreshInterval: ttl / 4}
	cfg.Backends = tether.Backends{Broker: b.Broker(), History: b.History(), Presence: b.Presence()}
	return &env{t: t, n: tethertest.NewNode(t, cfg)}, b
}

// TestNATSPresenceAcrossNodes runs two nodes with presence on one NATS: a
// user's join on node A is a push to a subscriber on node B, the user's
// second tab on B is silent (join_leave users), and when A dies its members
// leave B's view within the presence TTL after A's last refresh, after
// which the user's last tab on B is the user's leave.
func TestNATSPresenceAcrossNodes(t *testing.T) {
	const (
		ch  = "room:1"
		ttl = 2 * time.Second
	)
	srv := startNATS(t, t.TempDir(), 0)
	a, backendA := natsPresenceNode(t, srv.URL(), ttl)
	b, _ := natsPresenceNode(t, srv.URL(), ttl)

	bob := b.dialWS()
	connectAs(t, bob, "bob")
	bob.subscribe(ch, nil)
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"bob"}) {
		t.Fatalf("bob's own join: %+v", p)
	}

	annA := a.dialWS()
	annAID := connectAs(t, annA, "ann")
	annA.subscribe(ch, nil)
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"ann"}) || p.Join[0].Client != annAID || len(p.Leave) != 0 {
		t.Fatalf("ann's join on node A, seen on node B: %+v", p)
	}

	annB := b.dialWS()
	connectAs(t, annB, "ann")
	annB.subscribe(ch, nil) // ann's second tab: no join
	carl := b.dialWS()
	connectAs(t, carl, "carl")
	carl.subscribe(ch, nil)
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"carl"}) || len(p.Leave) != 0 {
		t.Fatalf("after ann's second tab (node B) and carl: %+v, want carl's join only", p)
	}
	if got := who(presenceOf(t, bob, ch).Members); !slices.Equal(got, []string{"ann", "ann", "bob", "carl"}) {
		t.Fatalf("presence on node B lists %v, want ann twice, bob and carl", got)
	}
	waitStats(t, bob, ch, protocol.PresenceStats{Clients: 4, Users: 3})

	// Node A dies: it can no longer refresh or remove its members.
	if err := backendA.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	deadline := killed.Add(ttl + 10*time.Second) // the TTL after A's last refresh, and a loaded machine's slack
	for {
		got := who(presenceOf(t, bob, ch).Members)
		if slices.Equal(got, []string{"ann", "bob", "carl"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after node A died, presence on node B lists %v, want ann once, bob and carl", time.Since(killed), got)
		}
		time.Sleep(50 * time.Millisecond) // expiry is the NATS server's clock: nothing to wait on
	}
	t.Logf("node A's member left %v after it died (TTL %v)", time.Since(killed).Round(10*time.Millisecond), ttl)
	waitStats(t, bob, ch, protocol.PresenceStats{Clients: 3, Users: 3})

	// Ann's tab on node A is gone: her tab on node B is her last.
	annB.w.close()
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Leave), []string{"ann"}) || len(p.Join) != 0 {
		t.Fatalf("ann's last live tab closed: %+v, want her leave", p)
	}
}
