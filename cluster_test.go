package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/nats/embedded"
	tclient "github.com/tetherhq/tether/client"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// natsCluster is a NATS cluster of in-process servers with JetStream.
type natsCluster struct {
	cfgs    []embedded.Config // each server's, its client port fixed once started
	servers []*embedded.Server
	urls    []string
}

// startNATSCluster starts size NATS servers routed to each other, and waits
// until JetStream has a leader. They are shut down when t ends.
func startNATSCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	// The route addresses are picked free, then let go for the servers to
	// listen on: meanwhile a connection elsewhere on the machine may take
	// one as its local port. Then the cluster starts again on new ones.
	const tries = 3
	for try := 1; ; try++ {
		c := &natsCluster{cfgs: clusterConfigs(t, size)}
		err := c.startServers(t)
		if err == nil {
			c.waitJetStream(t)
			return c
		}
		c.stop()
		if try == tries {
			t.Fatal(err)
		}
		t.Logf("NATS cluster, try %d of %d: %v", try, tries, err)
	}
}

// clusterConfigs returns the configs of size NATS servers routed to each
// other, on route addresses free when it looked.
func clusterConfigs(t *testing.T, size int) []embedded.Config {
	t.Helper()
	routes := make([]string, size)
	addrs := make([]string, size)
	for i := range size {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		routes[i] = "nats://" + addrs[i]
		ln.Close()
	}
	cfgs := make([]embedded.Config, size)
	for i := range size {
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, r)
			}
		}
		cfgs[i] = embedded.Config{Dir: t.TempDir(), Name: fmt.Sprint("n", i), Cluster: "tether-test", ClusterAddr: addrs[i], Routes: others}
	}
	return cfgs
}

// start starts the cluster's servers and waits until JetStream has a leader.
func (c *natsCluster) start(t *testing.T) {
	t.Helper()
	if err := c.startServers(t); err != nil {
		t.Fatal(err)
	}
	c.waitJetStream(t)
}

// startServers starts the cluster's servers, each shut down when t ends.
func (c *natsCluster) startServers(t *testing.T) error {
	t.Helper()
	c.servers, c.urls = nil, nil
	for i, cfg := range c.cfgs {
		s, err := embedded.Start(cfg)
		if err != nil {
			return fmt.Errorf("embedded.Start of %s: %w", cfg.Name, err)
		}
		t.Cleanup(s.Shutdown)
		u, err := url.Parse(s.URL())
		if err != nil {
			return err
		}
		c.cfgs[i].Port, _ = strconv.Atoi(u.Port())
		c.servers = append(c.servers, s)
		c.urls = append(c.urls, s.URL())
	}
	return nil
}

// waitJetStream waits until JetStream has a leader.
func (c *natsCluster) waitJetStream(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range c.servers {
		for !s.JetStreamReady() {
			if time.Now().After(deadline) {
				t.Fatal("JetStream cluster not ready within 30s")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stop shuts every server down.
func (c *natsCluster) stop() {
	for _, s := range c.servers {
		s.Shutdown()
	}
}

// soak is how many times longer the cluster tests publish: TETHER_SOAK=N
// (default 1) makes them soaks.
func soak(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("TETHER_SOAK"))
	if err != nil || n < 1 {
		return 1
	}
	t.Logf("soak: %dx the publications", n)
	return n
}

// startCluster starts three NATS servers and three nodes on them, or skips
// the test in -short mode.
func startCluster(t *testing.T) (*natsCluster, []*tether.Node) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a NATS cluster")
	}
	c := startNATSCluster(t, 3)
	return c, startClusterNodes(t, c, 3)
}

// urlsFrom lists the cluster's URLs starting with server i's.
func (c *natsCluster) urlsFrom(i int) string {
	var out []string
	for k := range c.urls {
		out = append(out, c.urls[(i+k)%len(c.urls)])
	}
	return strings.Join(out, ",")
}

// startClusterNodes starts n tether nodes on the cluster, node i connected to
// server i first, with the history stream on three replicas.
func startClusterNodes(t *testing.T, c *natsCluster, n int) []*tether.Node {
	t.Helper()
	nodes := make([]*tether.Node, n)
	for i := range nodes {
		cfg := natsConfig(c.urlsFrom(i % len(c.urls)))
		cfg.NATS.Replicas = min(3, len(c.urls))
		cfg.NATS.Name = fmt.Sprint("node", i)
		deadline := time.Now().Add(30 * time.Second)
		for {
			node, err := tethertest.Start(cfg)
			if err == nil {
				nodes[i] = node
				t.Cleanup(func() { tethertest.Close(node) })
				break
			}
			if time.Now().After(deadline) { // a new cluster may not place the stream at once
				t.Fatalf("node %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nodes
}

// lbRecorder is a recorder whose client reaches the nodes as through a load
// balancer: each connection goes to the first node of addrs that answers.
func lbRecorder(t *testing.T, addrs func() []string) *recorder {
	t.Helper()
	r := &recorder{want: 1 << 62, reach: make(chan struct{}), more: make(chan struct{}, 1), gap: make(chan tclient.Event, 16)}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var err error
		for _, a := range addrs() {
			var c net.Conn
			if c, err = d.DialContext(ctx, network, a); err == nil {
				r.mu.Lock()
				r.tcp = c
				r.mu.Unlock()
				return c, nil
			}
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tclient.Dial(ctx, "ws://tether.lb/ws", tclient.WithDialer(dial),
		tclient.WithBackoff(5*time.Millisecond, 100*time.Millisecond), tclient.WithEventHandler(r.event))
	if err != nil {
		t.Fatalf("tclient.Dial: %v", err)
	}
	r.c = c
	t.Cleanup(func() { _ = c.Close() })
	return r
}

// waitOffsets waits until r holds offsets 1..last, each once, in order, in
// one epoch, and no gap event came.
func waitOffsets(t *testing.T, r *recorder, last uint64, d time.Duration) {
	t.Helper()
	waitPublications(t, r, last, true, d)
}

// waitAtLeast is waitOffsets for a run still publishing: more than last is
// fine.
func waitAtLeast(t *testing.T, r *recorder, last uint64, d time.Duration) {
	t.Helper()
	waitPublications(t, r, last, false, d)
}

func waitPublications(t *testing.T, r *recorder, last uint64, exact bool, d time.Duration) {
	t.Helper()
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		pubs := append([]*protocol.Publication(nil), r.pubs...)
		r.mu.Unlock()
		for i, p := range pubs {
			if p.Offset != uint64(i+1) || p.Epoch != pubs[0].Epoch {
				t.Fatalf("publication #%d is %s/%d (first epoch %s): want offsets 1.. once each, in order", i, p.Epoch, p.Offset, pubs[0].Epoch)
			}
		}
		if n := r.count(tclient.Gap); n != 0 {
			t.Fatalf("%d gap events", n)
		}
		if uint64(len(pubs)) >= last {
			if exact && uint64(len(pubs)) > last {
				t.Fatalf("%d publications, want %d", len(pubs), last)
			}
			return
		}
		select {
		case <-r.more:
		case <-timeout.C:
			t.Fatalf("%d publications after %v, want %d", len(pubs), d, last)
		}
	}
}

// publishLoop publishes count publications to channel through n, retrying
// each that fails with ErrUnavailable, and returns the highest offset given.
func publishLoop(n *tether.Node, channel string, count int, every time.Duration) (uint64, error) {
	var top uint64
	for k := range count {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			pos, err := n.Publish(ctx, channel, numbered(uint64(k)))
			cancel()
			if err == nil {
				top = max(top, pos.Offset)
				break
			}
			// A failover refuses some publishes, or leaves them without an
			// answer until the stream has a new leader.
			retry := errors.Is(err, tether.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
			if !retry || time.Now().After(deadline) {
				return top, fmt.Errorf("publish %d: %w", k, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if every > 0 {
			time.Sleep(every)
		}
	}
	return top, nil
}

// TestClusterEveryoneOnce: three NATS servers, three nodes, publishers and
// subscribers on every node: every subscriber gets every publication once,
// in offset order.
func TestClusterEveryoneOnce(t *testing.T) {
	_, nodes := startCluster(t)
	var rs []*recorder
	for _, n := range nodes {
		for range 2 {
			r := newRecorder(t, tethertest.WSURL(n, "/ws"), 1<<62)
			r.subscribe(t, "room")
			rs = append(rs, r)
		}
	}
	each := 100 * soak(t)
	errs := make(chan error, len(nodes))
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := publishLoop(n, "room", each, 0); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, r := range rs {
		waitOffsets(t, r, uint64(each*len(nodes)), 30*time.Second)
	}
	checkNodeList(t, nodes)
	checkSharedPresence(t, nodes)
}

// checkSharedPresence adds one member on each node and waits until every
// node lists the three (a replica a little behind may answer a listing).
func checkSharedPresence(t *testing.T, nodes []*tether.Node) {
	t.Helper()
	ctx := context.Background()
	for i, n := range nodes {
		if err := n.PresenceStore().Add(ctx, "room", backend.Member{Client: fmt.Sprint("c", i), User: "ann"}); err != nil {
			t.Fatalf("node %d: presence Add: %v", i, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for i, n := range nodes {
		for {
			st, err := n.PresenceStore().Stats(ctx, "room")
			if err == nil && st == (backend.PresenceStats{Clients: len(nodes), Users: 1}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: presence stats %+v, %v; want %d clients of one user", i, st, err, len(nodes))
			}
			time.Sleep(20 * time.Millisecond) // replication has no signal to wait on here
		}
	}
}

// checkNodeList waits until every node's /api/info lists the three nodes,
// each with its two connections.
func checkNodeList(t *testing.T, nodes []*tether.Node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range nodes {
		for {
			var info tether.Info
			resp, body := getJSON(t, tethertest.HTTPURL(n, "/api/info"))
			err := json.Unmarshal(body, &info)
			ok := err == nil && resp.StatusCode == http.StatusOK && len(info.Nodes) == len(nodes)
			for i, in := range info.Nodes {
				ok = ok && in.Name == fmt.Sprint("node", i) && in.Connections == 2
			}
			if ok {
				ok = grpcNodeCount(t, n) == len(nodes)
			}
			if ok {
				var st tether.Stats
				_, sbody := getJSON(t, tethertest.HTTPURL(n, "/api/stats"))
				ok = json.Unmarshal(sbody, &st) == nil && len(st.Nodes) == len(nodes)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/api/info: %s (%v), want the %d nodes with 2 connections each", body, err, len(nodes))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// grpcNodeCount asks n's gRPC ServerAPI/Info how many nodes it knows.
func grpcNodeCount(t *testing.T, n *tether.Node) int {
	t.Helper()
	cc, err := grpc.NewClient(n.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := tetherv1.NewServerAPIClient(cc).Info(ctx, &tetherv1.InfoRequest{})
	if err != nil {
		t.Fatalf("gRPC Info: %v", err)
	}
	return len(info.GetNodes())
}

func getJSON(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestClusterNodeDies stops the node every client is connected to while
// another publishes: the clients reconnect to the other nodes and recover,
// nothing lost, nothing twice.
func TestClusterNodeDies(t *testing.T) {
	_, nodes := startCluster(t)
	var mu sync.Mutex
	alive := []string{nodes[0].Addr().String(), nodes[1].Addr().String(), nodes[2].Addr().String()}
	addrs := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), alive...) }
	var rs []*recorder
	for range 4 {
		r := lbRecorder(t, addrs)
		r.subscribe(t, "room")
		rs = append(rs, r)
	}
	total := 200 * soak(t)
	done := make(chan error, 1)
	go func() {
		_, err := publishLoop(nodes[1], "room", total, 2*time.Millisecond)
		done <- err
	}()
	waitAtLeast(t, rs[0], 50, 20*time.Second)
	mu.Lock()
	alive = alive[1:]
	mu.Unlock()
	tethertest.Close(nodes[0])
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		waitOffsets(t, r, uint64(total), 30*time.Second)
	}
}

// TestClusterNATSServerDies stops one of three NATS servers while a node
// publishes: the nodes move to the others and service goes on, nothing lost.
func TestClusterNATSServerDies(t *testing.T) {
	c, nodes := startCluster(t)
	var rs []*recorder
	for _, n := range nodes {
		r := newRecorder(t, tethertest.WSURL(n, "/ws"), 1<<62)
		r.subscribe(t, "room")
		rs = append(rs, r)
	}
	total := 200 * soak(t)
	done := make(chan struct {
		top uint64
		err error
	}, 1)
	go func() {
		top, err := publishLoop(nodes[1], "room", total, 2*time.Millisecond)
		done <- struct {
			top uint64
			err error
		}{top, err}
	}()
	waitAtLeast(t, rs[2], 50, 20*time.Second)
	c.servers[2].Shutdown()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, r := range rs {
		waitOffsets(t, r, res.top, 30*time.Second)
	}
}

// TestClusterRestart stops every node and every NATS server, and starts
// them again: the history is still there in the same epoch, and a client
// recovers from where it was.
func TestClusterRestart(t *testing.T) {
	c, nodes := startCluster(t)
	epoch := publishN(t, nodes[0], "room", 1, 20)
	for _, n := range nodes {
		tethertest.Close(n)
	}
	c.stop()

	c.start(t)
	nodes = startClusterNodes(t, c, 3)
	cl := dial(t, nodes[2])
	m := cl.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "room", Recover: &protocol.Position{Epoch: epoch, Offset: 10}})
	var res protocol.SubscribeResult
	if err := json.Unmarshal(m.Result, &res); err != nil || m.Error != nil {
		t.Fatalf("subscribe: %s %v %v", m.Result, m.Error, err)
	}
	if res.Epoch != epoch || res.Offset != 20 || !res.Recovered || len(res.Publications) != 10 {
		t.Fatalf("after restarting everything: %s; want epoch %s, offset 20, recovered with 11..20", m.Result, epoch)
	}
	if err := checkSequence(res.Publications, epoch, 11, 20); err != nil {
		t.Fatal(err)
	}
	if e := publishN(t, nodes[1], "room", 21, 21); e != epoch {
		t.Fatalf("publish after the restart: epoch %s, want %s", e, epoch)
	}
}
