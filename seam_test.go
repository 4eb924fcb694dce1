package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// calls records what a node asked of its backends, one line per call.
type calls struct {
	mu  sync.Mutex
	log []string
}

func (c *calls) add(format string, args ...any) {
	c.mu.Lock()
	c.log = append(c.log, fmt.Sprintf(format, args...))
	c.mu.Unlock()
}

func (c *calls) has(line string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.log, line)
}

// asyncBroker is a memory broker whose publications reach the node's handler
// on a goroutine of its own, a little later than Publish returns, as they
// would from a broker across a network. It records every call.
type asyncBroker struct {
	inner *memory.Broker
	calls *calls
	queue chan *protocol.Publication
	done  chan struct{}
}

func newAsyncBroker(t *testing.T, c *calls) *asyncBroker {
	b := &asyncBroker{inner: memory.NewBroker(), calls: c, queue: make(chan *protocol.Publication, 1024), done: make(chan struct{})}
	t.Cleanup(func() { close(b.queue); <-b.done }) // after the node's shutdown: cleanups run last first
	return b
}

func (b *asyncBroker) Register(handle func(*protocol.Publication)) error {
	b.calls.add("register")
	go func() {
		defer close(b.done)
		for p := range b.queue {
			if rand.IntN(4) == 0 {
				time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
			}
			handle(p)
		}
	}()
	return b.inner.Register(func(p *protocol.Publication) { b.queue <- p })
}

func (b *asyncBroker) Publish(ctx context.Context, p *protocol.Publication) error {
	b.calls.add("publish %s %d", p.Channel, p.Offset)
	return b.inner.Publish(ctx, p)
}

func (b *asyncBroker) Subscribe(ctx context.Context, channel string) error {
	b.calls.add("subscribe %s", channel)
	return b.inner.Subscribe(ctx, channel)
}

func (b *asyncBroker) Unsubscribe(ctx context.Context, channel string) error {
	b.calls.add("unsubscribe %s", channel)
	return b.inner.Unsubscribe(ctx, channel)
}

// recordedHistory is a memory history that records every call.
type recordedHistory struct {
	*memory.History
	calls *calls
}

func (h recordedHistory) Append(ctx context.Context, p *protocol.Publication) (protocol.Position, error) {
	pos, err := h.History.Append(ctx, p)
	h.calls.add("append %s %d", p.Channel, pos.Offset)
	return pos, err
}

func (h recordedHistory) Read(ctx context.Context, channel string, q backend.Query) (backend.Result, error) {
	h.calls.add("read %s", channel)
	return h.History.Read(ctx, channel, q)
}

var (
	_ backend.Broker  = (*asyncBroker)(nil)
	_ backend.History = recordedHistory{}
)

// newRecordedHistory returns a memory history of 100 publications, closed
// when the test ends.
func newRecordedHistory(t *testing.T, c *calls) recordedHistory {
	h := memory.NewHistory(memory.HistoryConfig{Size: 100, TTL: time.Minute})
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return recordedHistory{h, c}
}

// TestBackendsSeam plugs its own broker and history into a node through the
// public Config and sees publications flow through them: interest declared on
// the first subscriber and withdrawn after the last, every publication
// appended then published, history read through the store, and the node
// leaving backends it did not make open at Shutdown.
func TestBackendsSeam(t *testing.T) {
	c := &calls{}
	hist := newRecordedHistory(t, c)
	cfg := tethertest.Config()
	cfg.Backends = tether.Backends{Broker: newAsyncBroker(t, c), History: hist}
	n := tethertest.NewNode(t, cfg)

	cl := dial(t, n)
	cl.subscribe("seam")
	if _, err := n.Publish(context.Background(), "seam", json.RawMessage(`"from the node"`)); err != nil {
		t.Fatal(err)
	}
	id := cl.send(protocol.Command{Op: protocol.OpPublish, Channel: "seam", Data: json.RawMessage(`"from a client"`)})
	var got []string
	for replied := false; !replied || len(got) < 2; {
		switch m := cl.read(); {
		case m.Op == protocol.PushPub:
			got = append(got, fmt.Sprintf("%d %s", m.Offset, m.Data))
		case m.ID == id && m.Error != nil:
			t.Fatal(m.Error)
		case m.ID == id:
			replied = true
		}
	}
	if want := []string{`1 "from the node"`, `2 "from a client"`}; !slices.Equal(got, want) {
		t.Fatalf("client got %q, want %q", got, want)
	}
	cl.call(protocol.Command{Op: protocol.OpHistory, Channel: "seam"})
	cl.call(protocol.Command{Op: protocol.OpUnsubscribe, Channel: "seam"})
	for _, line := range []string{"register", "subscribe seam", "read seam", "append seam 1", "publish seam 1", "append seam 2", "publish seam 2", "unsubscribe seam"} {
		if !c.has(line) {
			t.Errorf("no %q among the backend calls %q", line, c.log)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := hist.Append(ctx, &protocol.Publication{Channel: "seam", Data: json.RawMessage(`1`)}); err != nil {
		t.Fatalf("the node closed a history it was given: %v", err)
	}
}

// brokenHistory is a history store that is down: every call fails with a
// message that must stay in the server.
type brokenHistory struct{}

var errStoreDown = errors.New("store at 10.0.0.7 unreachable")

func (brokenHistory) Append(context.Context, *protocol.Publication) (protocol.Position, error) {
	return protocol.Position{}, errStoreDown
}

func (brokenHistory) Read(context.Context, string, backend.Query) (backend.Result, error) {
	return backend.Result{}, errStoreDown
}

// TestBackendFailure: when a backend fails, the embedder gets ErrUnavailable
// with the backend's error in the chain, the server API 503 and a client
// unavailable, without the backend's message; the connection stays usable.
func TestBackendFailure(t *testing.T) {
	cfg := tethertest.Config()
	cfg.Backends.History = brokenHistory{}
	n := tethertest.NewNode(t, cfg)

	_, err := n.Publish(context.Background(), "x", json.RawMessage(`1`))
	if !errors.Is(err, tether.ErrUnavailable) || !errors.Is(err, errStoreDown) {
		t.Fatalf("Publish: %v, want ErrUnavailable wrapping the store's error", err)
	}
	resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), "", `{"channel":"x","data":1}`)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), "10.0.0.7") {
		t.Fatalf("API: %d %s, want 503 without the store's message", resp.StatusCode, body)
	}
	c := dial(t, n)
	for _, cmd := range []protocol.Command{
		{Op: protocol.OpPublish, Channel: "x", Data: json.RawMessage(`1`)},
		{Op: protocol.OpSubscribe, Channel: "x"},
		{Op: protocol.OpHistory, Channel: "x"},
	} {
		m := c.call(cmd)
		if m.Error == nil || m.Error.Code != protocol.ErrUnavailable || strings.Contains(m.Error.Message, "10.0.0.7") {
			t.Fatalf("%s: %+v, want unavailable without the store's message", cmd.Op, m.Error)
		}
	}
	if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
		t.Fatalf("ping after the failures: %v", m.Error)
	}
}
