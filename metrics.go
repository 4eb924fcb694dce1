package tether

import (
	"github.com/tetherhq/tether/internal/metrics"
)

// initMetrics registers the node's metrics on cfg.Registry, or on a registry of
// its own.
func (n *Node) initMetrics() error {
	m, err := metrics.New(n.cfg.Registry, n.snapshot)
	if err != nil {
		return err
	}
	n.metrics = m
	return nil
}

// snapshot gathers the node's counters for a scrape.
func (n *Node) snapshot() metrics.Snapshot {
	hs := n.hub.Stats()
	ss := n.sessions.Stats()
	ws := n.ws.Stats()
	return metrics.Snapshot{
		Connections:       map[string]int{"websocket": n.ws.Len()},
		Channels:          hs.Channels,
		Subscriptions:     hs.Subscriptions,
		Publications:      ss.Publications.Load(),
		Deliveries:        n.hub.Deliveries(),
		BytesIn:           ws.BytesIn,
		BytesOut:          ws.BytesOut,
		SlowConsumers:     ss.SlowConsumers.Load(),
		HeartbeatTimeouts: ss.HeartbeatTimeouts.Load(),
		RecoveredOK:       ss.RecoveredOK.Load(),
		RecoveredFailed:   ss.RecoveredFailed.Load(),
		RateLimited:       ss.RateLimited.Load(),
		CommandErrors:     ss.CommandErrors.Load(),
	}
}

// ready reports whether the node should get traffic: started, its listener (if
// it has one) up, and not draining.
func (n *Node) ready() bool {
	return n.ctx.Err() == nil && !n.ws.Draining()
}
