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

// PresenceTracker is implemented by Presence stores that say, atomically with
// each change, whether it changed the channel's members and its users. A node
// decides join and leave pushes by it: with join_leave per user, a user's
// first connection to a channel is its join and the last one its leave,
// whichever nodes they are on. A node whose store does not implement it sends
// join and leave per connection, and refreshes members with Add.
//
// Contract, in addition to Presence's:
//   - Join is Add, and returns what the Add changed; Leave is Remove, and
//     returns what the Remove changed (the zero PresenceChange, with the
//     channel's Stats, when the client was not there).
//   - For one user in one channel, the Joins that return UserChanged and the
//     Leaves that return UserChanged alternate, starting with a Join, however
//     many clients of the user join and leave concurrently, on any node:
//     exactly one of two concurrent first Joins says UserChanged. (A member
//     that expires ends its user's run without a Leave.)
//   - Stats are the channel's counts right after the change, before any
//     later one.
//   - Refresh renews the TTL of those of clients that are members of the
//     channel, as an Add of each would, and ignores the others: it never adds
//     a member back. It is how a node keeps its members alive, in batches.
//   - Contexts and errors as Presence's; all methods are safe for concurrent
//     use.
type PresenceTracker interface {
	// Join adds m to channel, or refreshes it, and says what changed.
	Join(ctx context.Context, channel string, m Member) (PresenceChange, error)
	// Leave removes the member with client id client from channel, and says
	// what changed.
	Leave(ctx context.Context, channel, client string) (PresenceChange, error)
	// Refresh renews the TTL of the members of channel among clients.
	Refresh(ctx context.Context, channel string, clients []string) error
}

// PresenceChange is what one PresenceTracker.Join or Leave changed.
type PresenceChange struct {
	// Member is the member added (Join) or removed (Leave). Zero when Leave
	// found no such client.
	Member Member
	// Changed says the client was not a member before Join, or was one
	// before Leave.
	Changed bool
	// UserChanged says Changed and, for a member with a user, that the user
	// had no other member in the channel before Join or has none left after
	// Leave. For a member without a user it equals Changed.
	UserChanged bool
	// Stats are the channel's counts right after the change.
	Stats PresenceStats
}
