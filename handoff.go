package tether

import (
	"sync"

	"github.com/lesismal/nbio"
)

// handoff orders the accepting goroutine's setup of a connection before the
// event loop's first read of it, in a way the race detector can see. nbio hands
// connections over through epoll, a real ordering that the detector does not
// know of, so race-enabled builds reported every connection's setup as a race
// (and a real bug could hide among them). The lock is taken only in
// race-enabled builds; other builds pay nothing.
type handoff struct{ mu sync.Mutex }

// give runs f, which hands a connection to the event loop.
func (h *handoff) give(f func()) {
	if raceEnabled {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	f()
}

// take is called by the event loop before it reads a connection.
func (h *handoff) take() {
	if raceEnabled {
		h.mu.Lock()
		h.mu.Unlock() // an empty critical section: only the ordering matters
	}
}

// onData wraps the engine's data handler with take.
func (h *handoff) onData(c *nbio.Conn, data []byte) {
	h.take()
	c.DataHandler()(c, data)
}
