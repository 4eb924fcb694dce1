//go:build race

package tether

import (
	"net"
	"sync/atomic"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// fenceAccepts makes visible to the race detector the hand-off of each accepted
// connection from nbio's accept goroutine to its poller goroutine. nbio passes it
// through epoll, which orders the two in fact but not in the detector's eyes,
// so it reports the poller reading what accept wrote (the remote address). An
// atomic store after the accept and a load before each read are the edge it
// needs. Built into -race binaries only.
func fenceAccepts(e *nbhttp.Engine) {
	var fence atomic.Int64
	e.OnOpen(func(net.Conn) { fence.Add(1) })
	e.Engine.OnReadBufferAlloc(func(c *nbio.Conn) *[]byte {
		fence.Load()
		return e.Engine.PollerBufferPtr(c)
	})
}
