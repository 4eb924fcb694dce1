package tether

import (
	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/grpcconn"
	"github.com/tetherhq/tether/internal/metrics"
	"github.com/tetherhq/tether/internal/tcpconn"
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
	return metrics.Snapshot{
		Transports:        n.transportStats(),
		Channels:          hs.Channels,
		Subscriptions:     hs.Subscriptions,
		Publications:      ss.Publications.Load(),
		Deliveries:        n.hub.Deliveries(),
		SlowConsumers:     ss.SlowConsumers.Load(),
		HeartbeatTimeouts: ss.HeartbeatTimeouts.Load(),
		RecoveredOK:       ss.RecoveredOK.Load(),
		RecoveredFailed:   ss.RecoveredFailed.Load(),
		RateLimited:       ss.RateLimited.Load(),
		CommandErrors:     ss.CommandErrors.Load(),
		AuthFailures:      ss.AuthFailures.Load(),
		Refused: map[string]int64{
			"per_ip":            n.conns.RefusedFromIP(),
			"per_user":          ss.UserLimited.Load(),
			"connect_timeout":   ss.ConnectTimeouts.Load(),
			"token_expired":     ss.TokensExpired.Load(),
			"handshake_timeout": n.handshakeTimeouts.Load(),
		},
	}
}

// transportStats returns every transport's connections and traffic, those
// not configured included (at zero), so that each has its series.
func (n *Node) transportStats() map[string]metrics.Transport {
	var tcp tcpconn.Stats
	if n.tr.tcp != nil {
		tcp = n.tr.tcp.Stats()
	}
	var grpc grpcconn.Stats
	if n.tr.grpcStreams != nil {
		grpc = n.tr.grpcStreams.Stats()
	}
	ws := n.ws.Stats()
	stats := func(t conns.Transport, in, out int64) metrics.Transport {
		return metrics.Transport{Connections: n.conns.Count(t), BytesIn: in, BytesOut: out}
	}
	return map[string]metrics.Transport{
		conns.WebSocket.String(): stats(conns.WebSocket, ws.BytesIn, ws.BytesOut),
		conns.TCP.String():       stats(conns.TCP, tcp.BytesIn, tcp.BytesOut),
		conns.GRPC.String():      stats(conns.GRPC, grpc.BytesIn, grpc.BytesOut),
	}
}

// ready reports whether the node should get traffic: started, its listener (if
// it has one) up, and not draining.
func (n *Node) ready() bool {
	return n.ctx.Err() == nil && !n.conns.Draining()
}
