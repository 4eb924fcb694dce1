package nats

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tetherhq/tether/backend"
)

var _ backend.Cluster = (*Backend)(nil)

// announceEvery is how often a node announces itself; a node not heard from
// for three times as long is left out of Nodes.
const announceEvery = 2 * time.Second

// nodes keeps what the nodes announced, by name.
type nodes struct {
	mu     sync.Mutex
	byName map[string]backend.NodeInfo
	sub    *natsgo.Subscription
	stop   chan struct{}
	done   chan struct{}
}

func (b *Backend) nodesSubject() string { return b.cfg.Prefix + ".nodes" }

// Announce implements backend.Cluster: it publishes describe's answer on the
// nodes subject now and every 2s, and listens to the other nodes'. Nodes not
// heard from for 6s are left out.
func (b *Backend) Announce(describe func() backend.NodeInfo) {
	b.nodes.mu.Lock()
	defer b.nodes.mu.Unlock()
	if b.nodes.stop != nil || b.closed.Load() {
		return
	}
	b.nodes.byName = make(map[string]backend.NodeInfo)
	sub, err := b.nc.Subscribe(b.nodesSubject(), func(m *natsgo.Msg) {
		var in backend.NodeInfo
		if json.Unmarshal(m.Data, &in) != nil || in.Name == "" {
			return
		}
		in.Seen = time.Now()
		b.nodes.mu.Lock()
		b.nodes.byName[in.Name] = in
		b.nodes.mu.Unlock()
	})
	if err != nil {
		b.log.Warn("nats: listening to node announcements", "err", err)
	}
	b.nodes.sub = sub
	b.nodes.stop, b.nodes.done = make(chan struct{}), make(chan struct{})
	stop, done := b.nodes.stop, b.nodes.done
	announce := func() {
		in := describe()
		if in.Name == "" {
			in.Name = b.cfg.Name
		}
		data, _ := json.Marshal(in)
		if err := b.nc.Publish(b.nodesSubject(), data); err != nil && b.nc.IsConnected() {
			b.log.Warn("nats: announcing this node", "err", err)
		}
	}
	go func() {
		defer close(done)
		announce()
		t := time.NewTicker(announceEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				announce()
			}
		}
	}()
}

// Nodes implements backend.Cluster.
func (b *Backend) Nodes() []backend.NodeInfo {
	b.nodes.mu.Lock()
	defer b.nodes.mu.Unlock()
	out := make([]backend.NodeInfo, 0, len(b.nodes.byName))
	for _, in := range b.nodes.byName {
		if time.Since(in.Seen) < 3*announceEvery {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(x, y backend.NodeInfo) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// stopAnnouncing ends Announce's goroutine and subscription.
func (b *Backend) stopAnnouncing() {
	b.nodes.mu.Lock()
	stop, done, sub := b.nodes.stop, b.nodes.done, b.nodes.sub
	b.nodes.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}
