package tether

import (
	"context"
	"time"

	"github.com/tetherhq/tether/internal/presence"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// PresenceConfig sets how a node gathers presence pushes and keeps its
// members alive in the presence store. Zero fields take their defaults.
type PresenceConfig struct {
	// Window is how long a channel's joins, leaves and count changes are
	// gathered into one push. Defaults to 500ms: a subscriber gets at most
	// two presence pushes per second from a node.
	Window time.Duration
	// MaxListed caps the members one push lists, joins and leaves
	// together; past it a push says only how many joined and left.
	// Defaults to 100.
	MaxListed int
	// RefreshInterval is how often the node renews its members' entries in
	// the store, in batches; it must be well under the store's TTL (the
	// memory store's is a minute). Defaults to 20s.
	RefreshInterval time.Duration
}

// openPresence starts the node's presence over its presence store and
// broker; its pushes reach the hub's subscribers.
func (n *Node) openPresence() error {
	h := n.hub
	p, err := presence.New(presence.Config{
		Store:  n.backends.Presence,
		Broker: n.backends.Broker,
		Deliver: func(channel string, payload []byte) {
			h.Push(channel, wire.NewMessage(payload))
		},
		Window:    n.cfg.Presence.Window,
		MaxListed: n.cfg.Presence.MaxListed,
		Logger:    n.log,
	})
	if err != nil {
		return err
	}
	n.presence = p
	return nil
}

// defaultPresenceRefresh is PresenceConfig.RefreshInterval's default.
const defaultPresenceRefresh = 20 * time.Second

// refreshPresence renews the node's presence entries every
// RefreshInterval until ctx ends: one pass over the sessions, one batch per
// channel.
func (n *Node) refreshPresence(ctx context.Context) {
	every := n.cfg.Presence.RefreshInterval
	if every <= 0 {
		every = defaultPresenceRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n.sessions.RefreshPresence(ctx)
		}
	}
}

// Presence returns the members of channel: the connections subscribed to
// it, on every node sharing the presence store, where the channel keeps
// presence (the Authorizer's auth.PresencePolicy says which do); none
// elsewhere.
func (n *Node) Presence(ctx context.Context, channel string) ([]protocol.Member, error) {
	if err := n.checkChannel(ctx, channel); err != nil {
		return nil, err
	}
	ms, err := n.presence.Members(ctx, channel)
	if err != nil {
		return nil, n.backendError("presence", err)
	}
	return ms, nil
}

// PresenceStats returns channel's counts of members and distinct users, as
// Presence finds them.
func (n *Node) PresenceStats(ctx context.Context, channel string) (protocol.PresenceStats, error) {
	if err := n.checkChannel(ctx, channel); err != nil {
		return protocol.PresenceStats{}, err
	}
	st, err := n.presence.Counts(ctx, channel)
	if err != nil {
		return protocol.PresenceStats{}, n.backendError("presence_stats", err)
	}
	return st, nil
}

// checkChannel refuses a call on channel before it starts: an ended ctx, a
// node shut down, a bad channel name.
func (n *Node) checkChannel(ctx context.Context, channel string) error {
	if err := n.checkCall(ctx); err != nil {
		return err
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return refuse(perr)
	}
	return nil
}

func (b apiBackend) Presence(ctx context.Context, channel string) ([]protocol.Member, error) {
	return b.n.Presence(ctx, channel)
}

func (b apiBackend) PresenceStats(ctx context.Context, channel string) (protocol.PresenceStats, error) {
	return b.n.PresenceStats(ctx, channel)
}
