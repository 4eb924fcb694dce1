package tether

import (
	"sync/atomic"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
)

// handoff orders what the accept loop wrote about a connection (its addresses,
// its nbhttp.Conn) before the event loop's first read of it, in a way the race
// detector can see. The event loop learns of a new socket from epoll, which
// the detector knows nothing of, so without this `go test -race` reports the
// loop reading RemoteAddr as racing with Accept (a false positive, but one
// that fails every test that opens connections fast enough). The accept loop
// calls release before it hands a connection over; the engine's data callback
// acquires before it parses: one atomic load per read event.
type handoff struct{ seq atomic.Uint64 }

func (h *handoff) release() { h.seq.Add(1) }

// install replaces e's data callback with nbhttp's own plus the acquire.
// Call it before e starts.
func (h *handoff) install(e *nbhttp.Engine) {
	e.OnData(func(c *nbio.Conn, data []byte) {
		h.seq.Load()
		c.DataHandler()(c, data)
	})
}
