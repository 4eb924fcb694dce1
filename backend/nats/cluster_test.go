package nats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	tnats "github.com/tetherhq/tether/backend/nats"
	"github.com/tetherhq/tether/protocol"
)

// node is one tether node's view of the backends: its History and Broker,
// and what its handler received, per channel.
type node struct {
	t  *testing.T
	be *tnats.Backend
	// pubMu serialises Append and Publish per node, as the hub's publish
	// lock does.
	pubMu sync.Mutex

	mu     sync.Mutex
	got    map[string][]*protocol.Publication
	signal chan struct{}
}

func newNode(t *testing.T, cfg tnats.Config) *node {
	t.Helper()
	n := &node{t: t, be: open(t, cfg), got: map[string][]*protocol.Publication{}, signal: make(chan struct{})}
	if err := n.be.Broker().Register(n.handle); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return n
}

func (n *node) handle(p *protocol.Publication) {
	n.mu.Lock()
	n.got[p.Channel] = append(n.got[p.Channel], p)
	close(n.signal)
	n.signal = make(chan struct{})
	n.mu.Unlock()
}

// publish appends and publishes as the hub does.
func (n *node) publish(ctx context.Context, channel string, data string) (protocol.Position, error) {
	n.pubMu.Lock()
	defer n.pubMu.Unlock()
	p := &protocol.Publication{Channel: channel, Data: json.RawMessage(data)}
	pos, err := n.be.History().Append(ctx, p)
	if err != nil {
		return pos, err
	}
	return pos, n.be.Broker().Publish(ctx, p)
}

// waitOffsets waits until channel received offsets 1..want and checks they
// came once each, in order.
func (n *node) waitOffsets(channel string, want uint64) {
	n.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		n.mu.Lock()
		got, signal := append([]*protocol.Publication(nil), n.got[channel]...), n.signal
		n.mu.Unlock()
		for i, p := range got {
			if p.Offset != uint64(i+1) || p.Epoch != got[0].Epoch {
				n.t.Fatalf("%s: publication %d has offset %d (epoch %s, first %s): want 1.. in order, once each", channel, i, p.Offset, p.Epoch, got[0].Epoch)
			}
		}
		if uint64(len(got)) >= want {
			if uint64(len(got)) > want {
				n.t.Fatalf("%s: received %d publications, want %d", channel, len(got), want)
			}
			return
		}
		select {
		case <-signal:
		case <-deadline:
			n.t.Fatalf("%s: received %d publications, want %d", channel, len(got), want)
		}
	}
}

// TestOrderAcrossNodes publishes to one channel from three nodes at once:
// offsets are contiguous across them, and every node's handler gets all of
// them once, in offset order, whatever order NATS brought them in.
func TestOrderAcrossNodes(t *testing.T) {
	srv := startServer(t)
	cfg := namespace(srv.URL())
	cfg.HistorySize = 1000
	nodes := []*node{newNode(t, cfg), newNode(t, cfg), newNode(t, cfg)}
	ctx := context.Background()
	for _, n := range nodes {
		if err := n.be.Broker().Subscribe(ctx, "ch"); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	const each = 200
	errs := make(chan error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range each {
				if _, err := n.publish(ctx, "ch", fmt.Sprintf(`{"node":%d,"k":%d}`, i, k)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.waitOffsets("ch", uint64(len(nodes)*each))
	}
}

// TestGapFilledFromStream appends a publication that never crosses the
// broker (as if NATS lost it): the receiving node reads it from the stream
// when the next one arrives, and delivers both in order.
func TestGapFilledFromStream(t *testing.T) {
	srv := startServer(t)
	cfg := namespace(srv.URL())
	a, b := newNode(t, cfg), newNode(t, cfg)
	ctx := context.Background()
	if err := b.be.Broker().Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if _, err := a.publish(ctx, "ch", `1`); err != nil {
		t.Fatal(err)
	}
	lost := &protocol.Publication{Channel: "ch", Data: json.RawMessage(`2`)}
	if _, err := a.be.History().Append(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if _, err := a.publish(ctx, "ch", `3`); err != nil {
		t.Fatal(err)
	}
	b.waitOffsets("ch", 3)
	if got := string(b.got["ch"][1].Data); got != "2" {
		t.Fatalf("the filled publication has data %s, want 2", got)
	}
}

// TestChannelNames uses names that are not NATS subject tokens as they are:
// each keeps its own history and its own deliveries.
func TestChannelNames(t *testing.T) {
	srv := startServer(t)
	cfg := namespace(srv.URL())
	a, b := newNode(t, cfg), newNode(t, cfg)
	ctx := context.Background()
	names := []string{"a.b", "a", "b", ".", "*", ">", "a.*.>", "a.>", "%2E", "чат:лобби", "频道", "🎉🚀",
		strings.Repeat("é", 127) + "x", strings.Repeat("🎉", 63) + "abc"}
	for _, name := range names {
		if err := b.be.Broker().Subscribe(ctx, name); err != nil {
			t.Fatalf("Subscribe(%q): %v", name, err)
		}
	}
	for i, name := range names {
		for k := 0; k <= i%3; k++ {
			if _, err := a.publish(ctx, name, fmt.Sprintf(`{"i":%d}`, i)); err != nil {
				t.Fatalf("publish(%q): %v", name, err)
			}
		}
	}
	for i, name := range names {
		want := uint64(i%3 + 1)
		b.waitOffsets(name, want)
		res, err := b.be.History().Read(ctx, name, backend.Query{Limit: backend.NoLimit})
		if err != nil {
			t.Fatalf("Read(%q): %v", name, err)
		}
		if res.Top.Offset != want || uint64(len(res.Publications)) != want {
			t.Fatalf("Read(%q): top %+v, %d publications; want offset %d", name, res.Top, len(res.Publications), want)
		}
		for _, p := range res.Publications {
			if p.Channel != name || string(p.Data) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Fatalf("Read(%q) returned %s of %q", name, p.Data, p.Channel)
			}
		}
	}
}
