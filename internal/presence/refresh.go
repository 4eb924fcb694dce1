package presence

import (
	"context"
)

// Refresh renews the entries of clients, members of channel on this node,
// in the store: in batches with a backend.PresenceTracker (which ignores
// those that left meanwhile), by Members and Add otherwise (under the
// channel's lock, so that none that leaves meanwhile on this node is added
// back). The caller calls it for each of its channels every refresh
// interval, well within the store's TTL: one pass per node, not a timer per
// member.
func (p *Presence) Refresh(ctx context.Context, channel string, clients []string) error {
	err := p.refresh(ctx, channel, clients)
	if err != nil {
		p.stats.Errors.Add(1)
		p.log.Warn("presence: refresh failed", "channel", channel, "err", err)
	}
	return err
}

func (p *Presence) refresh(ctx context.Context, channel string, clients []string) error {
	if p.tracker != nil {
		for len(clients) > 0 {
			n := min(len(clients), refreshBatch)
			if err := p.tracker.Refresh(ctx, channel, clients[:n]); err != nil {
				return err
			}
			clients = clients[n:]
		}
		return nil
	}
	c := p.lockChannel(channel)
	defer p.release(c)
	ms, err := p.cfg.Store.Members(ctx, channel)
	if err != nil {
		return err
	}
	local := make(map[string]bool, len(clients))
	for _, cl := range clients {
		local[cl] = true
	}
	for _, m := range ms {
		if local[m.Client] {
			if err := p.cfg.Store.Add(ctx, channel, m); err != nil {
				return err
			}
		}
	}
	return nil
}
