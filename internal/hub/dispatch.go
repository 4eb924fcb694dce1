package hub

import (
	"sync"
	"sync/atomic"

	"github.com/tetherhq/tether/protocol"
)

// Wire is a wire format: how one JSON message is framed on a transport.
type Wire int

// The wire formats a batch can be framed in.
const (
	// WireWebSocket frames each message as an unmasked WebSocket text frame.
	WireWebSocket Wire = iota
	// WireLine ends each message with a newline.
	WireLine
	wireCount
)

// AppendFrame appends payload framed for w to dst.
func (w Wire) AppendFrame(dst, payload []byte) []byte {
	switch w {
	case WireWebSocket:
		return AppendWebSocketFrame(dst, 0x1, payload)
	case WireLine:
		dst = append(dst, payload...)
		return append(dst, '\n')
	}
	panic("hub: unknown wire format")
}

// AppendWebSocketFrame appends one final, unmasked server frame with the given
// opcode (0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong).
func AppendWebSocketFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|opcode, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|opcode, 127,
			byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// Batch is a run of consecutive publications of one channel, delivered together:
// a subscriber gets them in one write, each still its own frame.
type Batch struct {
	// Pubs are the publications, in offset order. Each is already encoded.
	Pubs  []*protocol.Publication
	wires [wireCount]wireFrames
}

type wireFrames struct {
	once sync.Once
	buf  []byte
	ends []int // ends[i] is where Pubs[i]'s frame ends in buf
}

// Frames returns Pubs[from:] framed for w, one frame after another. The bytes are
// built once per batch and wire format and shared: callers must not modify them.
func (b *Batch) Frames(w Wire, from int) []byte {
	f := &b.wires[w]
	f.once.Do(func() {
		size := 0
		for _, p := range b.Pubs {
			raw, _ := p.Encode() // encoded by Publish: cannot fail
			size += len(raw) + 10
		}
		f.buf = make([]byte, 0, size)
		f.ends = make([]int, len(b.Pubs))
		for i, p := range b.Pubs {
			raw, _ := p.Encode()
			f.buf = w.AppendFrame(f.buf, raw)
			f.ends[i] = len(f.buf)
		}
	})
	if from == 0 {
		return f.buf
	}
	return f.buf[f.ends[from-1]:]
}

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
		b := &Batch{Pubs: c.pending[:n:n]}
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
func (h *Hub) deliver(b *Batch, subs []subscription) {
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
func (h *Hub) deliverTo(b *Batch, subs []subscription) {
	last := b.Pubs[len(b.Pubs)-1].Offset
	first := b.Pubs[0].Offset
	var n int64
	for _, s := range subs {
		from := 0
		switch since := s.m.since; {
		case since >= last:
			continue
		case since >= first:
			from = int(since-first) + 1
		}
		s.m.mu.Lock() // Unsubscribe waits for this delivery, or it sees gone
		if !s.m.gone {
			s.s.Deliver(b, from)
			n += int64(len(b.Pubs) - from)
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
