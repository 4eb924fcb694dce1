package tether

// AbortConnections drops up to k random WebSocket connections abruptly (no
// close frame, TCP reset), for the reconnection tests. Test-only.
func (n *Node) AbortConnections(k int) int { return n.ws.Abort(k) }
