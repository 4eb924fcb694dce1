package hub

import (
	"sync"
	"sync/atomic"

	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// dispatch delivers c's pending publications until there are none left. Only
// one dispatch runs per channel at a time, which keeps each subscriber's
// deliveries in offset order.
func (h *Hub) dispatch(c *channel) {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.dispatching = false
			h.maybeRemove(c)
			return
		}
		n := h.batchLen(c.pending)
		b := &wire.Batch{Pubs: c.pending[:n:n], Compression: h.cfg.Compression}
		if n == len(c.pending) {
			c.pending = nil
		} else {
			c.pending = c.pending[n:]
		}
		subs := c.subscriptions()
		c.mu.Unlock()
		h.deliver(b, subs)
	}
}

// batchLen returns how many of pending go in the next batch: all of them,
// or as many as fit in MaxBatchBytes (at least one). A batch is one write to
// each subscriber, and a write larger than a connection's outbound limit would
// close even a subscriber that keeps up.
func (h *Hub) batchLen(pending []*protocol.Publication) int {
	if h.cfg.MaxBatchBytes <= 0 {
		return len(pending)
	}
	size := 0
	for i, p := range pending {
		raw, _ := p.Encode()  // encoded by Publish: cannot fail
		size += len(raw) + 10 // the largest frame header
		if size > h.cfg.MaxBatchBytes && i > 0 {
			return i
		}
	}
	return len(pending)
}

// deliver hands b to every subscriber in subs and returns when all are
// served. Above one chunk, the pool's workers and this goroutine take chunks of
// ChunkSize subscribers from a shared cursor until none is left: a worker that
// gets less CPU (the machine is shared, a goroutine is preempted) takes fewer
// chunks instead of holding back a fixed share of the subscribers.
func (h *Hub) deliver(b *wire.Batch, subs []subscription) {
	chunk := h.cfg.ChunkSize
	if len(subs) <= chunk {
		h.deliverTo(b, subs)
		return
	}
	var next atomic.Int64
	run := func() {
		for {
			end := int(next.Add(int64(chunk)))
			start := end - chunk
			if start >= len(subs) {
				return
			}
			h.deliverTo(b, subs[start:min(end, len(subs))])
		}
	}
	helpers := min((len(subs)+chunk-1)/chunk-1, h.cfg.Workers)
	var wg sync.WaitGroup
	for range helpers {
		wg.Add(1)
		if !h.pool.submit(func() { run(); wg.Done() }) {
			wg.Done() // queue full: the others take its chunks
		}
	}
	run()
	wg.Wait()
}

// deliverTo hands b to each of subs in turn and counts the deliveries, once
// for the whole run (a shared counter per subscriber would be a contended
// write per delivery).
func (h *Hub) deliverTo(b *wire.Batch, subs []subscription) {
	var n int64
	for _, s := range subs {
		s.m.mu.Lock() // Unsubscribe waits for this delivery, or it sees gone
		switch {
		case s.m.gone:
		case s.m.held != nil: // its subscribe reply is not out yet
			*s.m.held = append(*s.m.held, b.Pubs...)
		default:
			if from := s.m.from(b.Pubs); from < len(b.Pubs) {
				s.s.Deliver(b, from)
				n += int64(len(b.Pubs) - from)
			}
		}
		s.m.mu.Unlock()
	}
	h.deliveries.Add(n)
}

// pool is a fixed set of goroutines running delivery tasks.
type pool struct {
	mu     sync.RWMutex // guards closed against a send on a closed tasks
	closed bool
	tasks  chan func()
	wg     sync.WaitGroup
}

func newPool(n int) *pool {
	p := &pool{tasks: make(chan func(), n*4)}
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for f := range p.tasks {
				f()
			}
		}()
	}
	return p
}

// submit queues f, or returns false when the queue is full or closed, in which
// case the caller runs f itself.
func (p *pool) submit(f func()) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.tasks <- f:
		return true
	default:
		return false
	}
}

func (p *pool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.tasks)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
