package hub

// ChannelStats is one local channel's last position and subscriber count at
// one moment.
type ChannelStats struct {
	Name string
	// Epoch and Offset are the position of the last publication the channel
	// was handed; zero before the first since it got its subscribers.
	Epoch       string
	Offset      uint64
	Subscribers int
}

// EachChannel calls f with the stats of every channel with local subscribers.
// It locks one channel at a time and calls f with no lock held; channels
// created or removed meanwhile may or may not be visited.
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
				batch = append(batch, ChannelStats{Name: c.name, Epoch: c.last.Epoch, Offset: c.last.Offset, Subscribers: len(c.subs)})
			}
			c.mu.Unlock()
		}
		for _, cs := range batch {
			f(cs)
		}
	}
}
