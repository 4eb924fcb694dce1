package tether

import (
	"context"

	"github.com/tetherhq/tether/protocol"
)

// DisconnectUser closes every connection authenticated as user, on any
// transport, telling each whether to reconnect, and returns how many there
// were. It refuses with ctx's error, ErrClosed or ErrBadRequest (no user).
func (n *Node) DisconnectUser(ctx context.Context, user string, reconnect bool) (int, error) {
	if err := n.checkCall(ctx); err != nil {
		return 0, err
	}
	if user == "" {
		return 0, badRequest("user is required")
	}
	d := protocol.DisconnectForce
	if reconnect {
		d = protocol.DisconnectForceReconnect
	}
	ss := n.sessions.UserSessions(user)
	for _, s := range ss {
		s.Disconnect(d)
	}
	return len(ss), nil
}

// Unsubscribe ends the subscriptions of every connection of user to
// channel; each gets an unsubscribe push with code
// protocol.UnsubscribeServer. It returns how many connections were
// subscribed, and refuses with ctx's error, ErrClosed, ErrBadRequest (no
// user) or ErrInvalidChannel.
func (n *Node) Unsubscribe(ctx context.Context, user, channel string) (int, error) {
	if err := n.checkCall(ctx); err != nil {
		return 0, err
	}
	if user == "" {
		return 0, badRequest("user is required")
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return 0, refuse(perr)
	}
	count := 0
	for _, s := range n.sessions.UserSessions(user) {
		if s.Unsubscribe(ctx, channel, protocol.UnsubscribeServer, "unsubscribed by the server") {
			count++
		}
	}
	return count, nil
}

func (b apiBackend) DisconnectUser(ctx context.Context, user string, reconnect bool) (int, error) {
	return b.n.DisconnectUser(ctx, user, reconnect)
}

func (b apiBackend) Unsubscribe(ctx context.Context, user, channel string) (int, error) {
	return b.n.Unsubscribe(ctx, user, channel)
}
