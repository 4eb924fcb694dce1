package memory

import (
	"time"

	"github.com/tetherhq/tether/protocol"
)

// ring is a channel's history: the last size publications, oldest first.
type ring struct {
	buf   []entry // grows up to size, then wraps
	start int     // index of the oldest entry once buf is full
	size  int
}

type entry struct {
	pub  *protocol.Publication
	time time.Time
}

func (r *ring) len() int { return len(r.buf) }

func (r *ring) at(i int) entry { return r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) push(p *protocol.Publication, now time.Time) {
	if r.size <= 0 {
		return
	}
	if len(r.buf) < r.size {
		r.buf = append(r.buf, entry{p, now})
		return
	}
	r.buf[r.start] = entry{p, now}
	r.start = (r.start + 1) % len(r.buf)
}

// prune drops the entries older than ttl (none when ttl is zero).
func (r *ring) prune(now time.Time, ttl time.Duration) {
	if ttl <= 0 || len(r.buf) == 0 {
		return
	}
	drop := 0
	for drop < len(r.buf) && now.Sub(r.at(drop).time) > ttl {
		drop++
	}
	if drop == 0 {
		return
	}
	kept := make([]entry, 0, max(len(r.buf)-drop, min(r.size, 16)))
	for i := drop; i < len(r.buf); i++ {
		kept = append(kept, r.at(i))
	}
	r.buf, r.start = kept, 0
}

// after returns up to limit publications with offsets above offset, oldest
// first (limit below zero: all of them).
func (r *ring) after(offset uint64, limit int) []*protocol.Publication {
	out := make([]*protocol.Publication, 0)
	for i := range len(r.buf) {
		if limit >= 0 && len(out) == limit {
			break
		}
		if p := r.at(i).pub; p.Offset > offset {
			out = append(out, p)
		}
	}
	return out
}
