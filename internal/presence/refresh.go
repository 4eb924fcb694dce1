package presence

import (
	"context"
	"time"
)

// Run renews this node's members' entries in the store every
// RefreshInterval until ctx ends: one Refresh per channel and batch of
// clients with a backend.PresenceTracker, a Members read and an Add per
// member otherwise. One goroutine per node does it, not a timer per member.
func (p *Presence) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Refresh(ctx)
		}
	}
}

// Refresh renews this node's members' entries once. Run calls it.
func (p *Presence) Refresh(ctx context.Context) {
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		chans := make([]*channel, 0, len(sh.channels))
		for _, c := range sh.channels {
			chans = append(chans, c)
		}
		sh.mu.Unlock()
		for _, c := range chans {
			if ctx.Err() != nil {
				return
			}
			if err := p.refresh(ctx, c); err != nil {
				p.stats.Errors.Add(1)
				p.log.Warn("presence: refresh failed", "channel", c.name, "err", err)
			}
		}
	}
}

// refresh renews c's members on this node. A tracker's Refresh ignores
// clients that left meanwhile, so the client ids are read and the lock let
// go between batches; without one, Members and Add run under c's lock, so
// that no member that leaves meanwhile is added back.
func (p *Presence) refresh(ctx context.Context, c *channel) error {
	c.mu.Lock()
	if p.tracker == nil {
		defer c.mu.Unlock()
		ms, err := p.cfg.Store.Members(ctx, c.name)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if _, ok := c.clients[m.Client]; ok {
				if err := p.cfg.Store.Add(ctx, c.name, m); err != nil {
					return err
				}
			}
		}
		return nil
	}
	batch := make([]string, 0, min(len(c.clients), refreshBatch))
	for client := range c.clients {
		batch = append(batch, client)
	}
	c.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), refreshBatch)
		if err := p.tracker.Refresh(ctx, c.name, batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}
