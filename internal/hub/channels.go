package hub

// ChannelStats is one channel's position and local subscriber count at one
// moment.
type ChannelStats struct {
	Name        string
	Epoch       string
	Offset      uint64
	Subscribers int
}

// EachChannel calls f with the stats of every channel. It locks one channel at
// a time and calls f with no lock held; channels created or removed meanwhile
// may or may not be visited.
func (h *Hub) EachChannel(f func(ChannelStats)) {
	var batch []ChannelStats
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		chans := make([]*channel, 0, len(s.channels))
		for _, c := range s.channels {
			chans = append(chans, c)
		}
		s.mu.Unlock()
		batch = batch[:0]
		for _, c := range chans {
			c.mu.Lock()
			if !c.removed {
				batch = append(batch, ChannelStats{Name: c.name, Epoch: c.epoch, Offset: c.offset, Subscribers: len(c.subs)})
			}
			c.mu.Unlock()
		}
		for _, cs := range batch {
			f(cs)
		}
	}
}
