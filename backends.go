package tether

import (
	"context"
	"errors"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
)

// Backends plug a node into the systems that carry and keep its channels. A
// nil field gets the memory implementation (package backend/memory), built
// from the Config's history settings and closed by the node at Shutdown;
// backends given here are the caller's to close.
type Backends struct {
	// Broker carries publications to every node subscribed to their channel.
	Broker backend.Broker
	// History gives publications their positions and keeps them for history
	// and recovery. Config.HistorySize and HistoryTTL apply to the memory
	// history only.
	History backend.History
	// Presence keeps the members of channels.
	Presence backend.Presence
}

// openBackends fills in the backends the config leaves out (NATS's when
// Config.NATS has a URL, else the memory ones) and returns the hub's
// configuration over them.
func (n *Node) openBackends() (hub.Config, error) {
	b := n.cfg.Backends
	nb, err := n.openNATS()
	if err != nil {
		return hub.Config{}, err
	}
	if nb != nil {
		n.owned = append(n.owned, nb)
		if b.History == nil {
			b.History = nb.History()
		}
		if b.Broker == nil {
			b.Broker = nb.Broker()
		}
		if b.Presence == nil {
			b.Presence = nb.Presence()
		}
	}
	if b.History == nil {
		h := memory.NewHistory(memory.HistoryConfig{
			Size:        n.cfg.HistorySize,
			TTL:         n.cfg.HistoryTTL,
			MaxChannels: n.cfg.MaxChannels,
			// A channel with subscribers here keeps its epoch, however quiet.
			Keep: func(channel string) bool {
				h := n.hubRef.Load()
				return h != nil && h.Has(channel)
			},
		})
		b.History = h
		n.owned = append(n.owned, h)
	}
	if b.Broker == nil {
		b.Broker = memory.NewBroker()
	}
	if b.Presence == nil {
		p := memory.NewPresence(memory.PresenceConfig{})
		b.Presence = p
		n.owned = append(n.owned, p)
	}
	n.backends = b
	return hub.Config{
		Broker:      b.Broker,
		History:     b.History,
		Recoverable: n.cfg.Backends.History != nil || n.cfg.HistorySize > 0,
		MaxChannels: n.cfg.MaxChannels,
		// A healthy subscriber never meets the outbound limit in one write.
		MaxBatchBytes: n.cfg.MaxOutbound / 4,
	}, nil
}

// backendsReady reports whether every backend that can tell
// (backend.Checker) works now.
func (n *Node) backendsReady() bool {
	for _, x := range []any{n.backends.Broker, n.backends.History, n.backends.Presence} {
		if c, ok := x.(backend.Checker); ok && c.Check(n.ctx) != nil {
			return false
		}
	}
	return true
}

// closeBackends closes the backends the node made itself.
func (n *Node) closeBackends(ctx context.Context) error {
	var errs []error
	for _, c := range n.owned {
		errs = append(errs, c.Close(ctx))
	}
	n.owned = nil
	return errors.Join(errs...)
}

// cluster returns the backend that spans nodes, if any.
func (n *Node) cluster() backend.Cluster {
	for _, x := range []any{n.backends.Broker, n.backends.History, n.backends.Presence} {
		if c, ok := x.(backend.Cluster); ok {
			return c
		}
	}
	return nil
}

// announce makes the node known to the others, when its backends span nodes.
func (n *Node) announce() {
	if c := n.cluster(); c != nil {
		c.Announce(func() backend.NodeInfo {
			hs := n.hub.Stats()
			return backend.NodeInfo{Connections: int64(n.conns.Len()), Channels: int64(hs.Channels)}
		})
	}
}

// clusterNodes lists the cluster's nodes, or none for a node alone.
func (n *Node) clusterNodes() []backend.NodeInfo {
	if c := n.cluster(); c != nil {
		return c.Nodes()
	}
	return nil
}
