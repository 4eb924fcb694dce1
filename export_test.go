package tether

import "time"

// AbortConnections drops up to k random WebSocket connections abruptly (no
// close frame, TCP reset), for the reconnection tests. Test-only.
func (n *Node) AbortConnections(k int) int { return n.ws.Abort(k) }

// StatsSampler returns a fresh /api/stats sampler of the node, to be called
// with the time of each request. Test-only.
func (n *Node) StatsSampler() func(now time.Time) Stats {
	return (&statsSampler{n: n, name: "test"}).sample
}

// RawAPIRequests returns how many API requests the node answered from the
// event loop's bytes (rawapi.go) rather than through nbhttp; -1 when it does
// not. Test-only.
func (n *Node) RawAPIRequests() int64 {
	if n.raw == nil {
		return -1
	}
	return n.raw.served.Load()
}
