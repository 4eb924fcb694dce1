package hub

import "github.com/tetherhq/tether/internal/wire"

// Pusher is a Subscriber that also takes messages that are not publications
// (presence pushes). Push has Deliver's rules: it must not block, must not
// call the hub, and must not modify m's frames.
type Pusher interface {
	Push(m *wire.Message)
}

// Push hands m to the channel's local subscribers that are Pushers and have
// their subscribe reply, on the caller's goroutine, and returns how many it
// reached. A push takes no place in the channel's offsets: it may come
// before or after a publication sent at about the same time.
func (h *Hub) Push(name string, m *wire.Message) int {
	c := h.lockChannel(name)
	if c == nil {
		return 0
	}
	subs := c.subscriptions()
	c.mu.Unlock()
	n := 0
	for _, s := range subs {
		p, ok := s.s.(Pusher)
		if !ok {
			continue
		}
		s.m.mu.Lock() // Unsubscribe waits for this push, or it sees gone
		// held is set while its subscribe reply is not out yet
		if !s.m.gone && s.m.held == nil {
			p.Push(m)
			n++
		}
		s.m.mu.Unlock()
	}
	return n
}
