package backend

import (
	"context"
	"encoding/json"
	"time"
)

// Presence keeps the members of each channel: the connections subscribed to it,
// wherever they are connected.
//
// Contract:
//   - Add is an upsert keyed by channel and member client id: it adds the
//     member, or replaces it and refreshes its time to live when the client is
//     already there. A member that is not added again within the store's TTL
//     expires by itself, so the members of a node that died go away without it.
//   - Remove of a member that is not there is not an error.
//   - Members and Stats reflect every Add and Remove that returned before they
//     were called, less what expired.
//   - Errors: ErrClosed after Close; anything else is a failure of the store.
//   - Contexts: every method called with a done context returns its error
//     (errors.Is); Add and Remove then have no effect.
//   - All methods are safe for concurrent use.
type Presence interface {
	// Add adds m to channel, or refreshes it.
	Add(ctx context.Context, channel string, m Member) error
	// Remove removes the member with client id client from channel.
	Remove(ctx context.Context, channel, client string) error
	// Members returns the channel's members, in no particular order.
	Members(ctx context.Context, channel string) ([]Member, error)
	// Stats counts the channel's members and their distinct users.
	Stats(ctx context.Context, channel string) (PresenceStats, error)
}

// Member is one connection present in a channel.
type Member struct {
	// Client is the connection's client id, unique across nodes.
	Client string `json:"client"`
	// User is the authenticated user, or empty for an anonymous connection.
	User string `json:"user,omitempty"`
	// Info is what the connection's credentials say about it, as JSON.
	Info json.RawMessage `json:"info,omitempty"`
	// ConnectedAt is when the connection was opened.
	ConnectedAt time.Time `json:"connected_at"`
}

// PresenceStats are the counts of a channel's members.
type PresenceStats struct {
	// Clients is the number of members.
	Clients int `json:"clients"`
	// Users is the number of distinct non-empty users among them.
	Users int `json:"users"`
}
