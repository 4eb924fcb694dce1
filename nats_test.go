package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/backend"
	tnats "github.com/tetherhq/tether/backend/nats"
	"github.com/tetherhq/tether/backend/nats/embedded"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// startNATS starts an in-process NATS server with JetStream in dir, on port
// (0: a free one), and shuts it down when t ends.
func startNATS(t testing.TB, dir string, port int) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Config{Dir: dir, Port: port})
	if err != nil {
		t.Fatalf("embedded.Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// natsConfig is tethertest's config on the NATS at urls.
func natsConfig(urls string) tether.Config {
	cfg := tethertest.Config()
	cfg.HistorySize = 1000
	cfg.NATS = tether.NATSConfig{URL: urls}
	return cfg
}

// publishN publishes {"n":i} for i in from..to through n, retrying a failed
// publish until it succeeds (a NATS failover refuses some), and checks the
// offsets it gets are from..to in one epoch.
func publishN(t *testing.T, n *tether.Node, channel string, from, to uint64) string {
	t.Helper()
	var epoch string
	for i := from; i <= to; i++ {
		deadline := time.Now().Add(20 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			pos, err := n.Publish(ctx, channel, numbered(i))
			cancel()
			if err == nil {
				if pos.Offset != i || (epoch != "" && pos.Epoch != epoch) {
					t.Fatalf("publish #%d got %+v (epoch so far %q)", i, pos, epoch)
				}
				epoch = pos.Epoch
				break
			}
			if !errors.Is(err, tether.ErrUnavailable) || time.Now().After(deadline) {
				t.Fatalf("publish #%d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return epoch
}

// TestNATSTwoNodes runs two nodes on one NATS server: a client of one gets
// what the other publishes, and recovers from the other what it missed.
func TestNATSTwoNodes(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	a := tethertest.NewNode(t, natsConfig(srv.URL()))
	b := tethertest.NewNode(t, natsConfig(srv.URL()))
	r := newRecorder(t, tethertest.WSURL(a, "/ws"), 20)
	r.subscribe(t, "news")
	epoch := publishN(t, b, "news", 1, 10)
	r.waitCount(t, 10, 10*time.Second)

	// The client moves to b while b publishes: it recovers from b's history.
	r.breakTCP()
	publishN(t, b, "news", 11, 20)
	waitAll(t, []*recorder{r}, 20*time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := checkSequence(r.pubs, epoch, 1, 20); err != nil {
		t.Fatal(err)
	}
}

// TestNATSPresenceShared: with --nats, the nodes share one presence store:
// a member one node adds is listed by the other.
func TestNATSPresenceShared(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	a := tethertest.NewNode(t, natsConfig(srv.URL()))
	b := tethertest.NewNode(t, natsConfig(srv.URL()))
	if _, ok := a.PresenceStore().(*tnats.Presence); !ok {
		t.Fatalf("the node's presence store is %T, want *nats.Presence", a.PresenceStore())
	}
	ctx := context.Background()
	if err := a.PresenceStore().Add(ctx, "room", backend.Member{Client: "c1", User: "ann"}); err != nil {
		t.Fatal(err)
	}
	ms, err := b.PresenceStore().Members(ctx, "room")
	if err != nil || len(ms) != 1 || ms[0].Client != "c1" || ms[0].User != "ann" {
		t.Fatalf("the other node lists %+v, %v; want c1 of ann", ms, err)
	}
}

// TestNATSMaxChannels: with --nats, Config.MaxChannels caps the channels of
// the shared history, all nodes together.
func TestNATSMaxChannels(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	cfg := natsConfig(srv.URL())
	cfg.MaxChannels = 2
	a := tethertest.NewNode(t, cfg)
	b := tethertest.NewNode(t, cfg)
	ctx := context.Background()
	for _, ch := range []string{"one", "two"} {
		if _, err := a.Publish(ctx, ch, numbered(1)); err != nil {
			t.Fatalf("Publish(%s): %v", ch, err)
		}
	}
	if _, err := b.Publish(ctx, "three", numbered(1)); !errors.Is(err, tether.ErrTooManyChannels) {
		t.Fatalf("Publish to a third channel on the other node: %v, want ErrTooManyChannels", err)
	}
	if _, err := b.Publish(ctx, "one", numbered(2)); err != nil {
		t.Fatalf("Publish to a channel held: %v", err)
	}
}

// TestNATSQuietChannel leaves a channel with a subscriber quiet for longer
// than the history TTL: its next publication reaches the subscriber in the
// same epoch, and a client whose position is older than what is kept is
// told it did not recover, in that epoch too.
func TestNATSQuietChannel(t *testing.T) {
	const ttl = time.Second
	srv := startNATS(t, t.TempDir(), 0)
	cfg := natsConfig(srv.URL())
	cfg.HistoryTTL = ttl
	a := tethertest.NewNode(t, cfg)
	b := tethertest.NewNode(t, cfg)
	c := dial(t, a)
	sub := c.subscribe("quiet")
	ctx := context.Background()
	first, err := b.Publish(ctx, "quiet", numbered(1))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.read(); m.Op != "pub" || m.Epoch != first.Epoch || m.Offset != 1 || sub.Epoch != first.Epoch {
		t.Fatalf("got %+v after subscribing at %+v, want offset 1 of %s", m, sub, first.Epoch)
	}
	time.Sleep(3 * ttl) // the time that passes is what is tested
	if _, err := b.Publish(ctx, "quiet", numbered(2)); err != nil {
		t.Fatal(err)
	}
	if m := c.read(); m.Op != "pub" || m.Epoch != first.Epoch || m.Offset != 2 {
		t.Fatalf("after the quiet time: %+v, want offset 2 of %s", m, first.Epoch)
	}
	late := dial(t, b)
	m := late.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "quiet", Recover: &protocol.Position{Epoch: first.Epoch}})
	var res protocol.SubscribeResult
	if m.Error != nil || json.Unmarshal(m.Result, &res) != nil {
		t.Fatalf("subscribe with recovery: %+v", m)
	}
	if res.Recovered || res.Epoch != first.Epoch || res.Offset != 2 {
		t.Fatalf("recovering from offset 0 after offset 1 expired: %+v, want recovered:false at %s/2", res, first.Epoch)
	}
}

// TestNATSUnreachable: a node whose NATS does not answer does not start, and
// says why.
func TestNATSUnreachable(t *testing.T) {
	srv := startNATS(t, t.TempDir(), 0)
	u := srv.URL()
	srv.Shutdown()
	_, err := tethertest.Start(natsConfig(u))
	if !errors.Is(err, tnats.ErrUnreachable) || !strings.Contains(err.Error(), "nats") {
		t.Fatalf("New with NATS down: %v, want ErrUnreachable", err)
	}
}

// TestNATSLost stops the NATS server under a running node: publishes fail
// with ErrUnavailable and /readyz turns 503; when the server is back (same
// port, same files) the node is ready again, its subscribers get what is
// published, and the epoch is the same.
func TestNATSLost(t *testing.T) {
	dir := t.TempDir()
	srv := startNATS(t, dir, 0)
	u, _ := url.Parse(srv.URL())
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	n := tethertest.NewNode(t, natsConfig(srv.URL()))
	c := dial(t, n)
	c.subscribe("news")
	epoch := publishN(t, n, "news", 1, 3)
	for range 3 {
		c.read()
	}

	srv.Shutdown()
	waitReady(t, n, http.StatusServiceUnavailable)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := n.Publish(ctx, "news", numbered(4)); !errors.Is(err, tether.ErrUnavailable) {
		t.Fatalf("Publish with NATS down: %v, want ErrUnavailable", err)
	}

	startNATS(t, dir, port)
	waitReady(t, n, http.StatusOK)
	if e := publishN(t, n, "news", 4, 6); e != epoch {
		t.Fatalf("epoch %s after NATS came back, was %s", e, epoch)
	}
	for i := uint64(4); i <= 6; i++ {
		m := c.read()
		if m.Op != protocol.PushPub || m.Offset != i {
			t.Fatalf("after NATS came back: %+v, want publication %d", m, i)
		}
	}
}

// waitReady waits until n's /readyz answers status.
func waitReady(t *testing.T, n *tether.Node, status int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(tethertest.HTTPURL(n, "/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not answer %d within 15s (last: %v %v)", status, resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
