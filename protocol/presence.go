package protocol

import "encoding/json"

// Presence ops a client may send.
const (
	// OpPresence asks for a channel's members.
	OpPresence = "presence"
	// OpPresenceStats asks for a channel's counts of clients and users.
	OpPresenceStats = "presence_stats"
)

// ErrTooManyMembers refuses a presence command whose reply would be larger
// than the server lets one reply be.
const ErrTooManyMembers = "too_many_members"

// PushPresence is the op of the presence push: who joined and left a channel
// during one window, and its counts. It shares its name with the presence
// command: a push has no id.
const PushPresence = "presence"

// Member is one connection present in a channel.
type Member struct {
	Client string `json:"client"`
	User   string `json:"user,omitempty"`
	// Info is what the connection's credentials say about it (any JSON).
	Info json.RawMessage `json:"info,omitempty"`
	// ConnectedAt is when the connection joined the channel's node's
	// presence, in Unix milliseconds.
	ConnectedAt int64 `json:"connected_at"`
}

// PresenceResult is the result of presence: the channel's members, in no
// particular order.
type PresenceResult struct {
	Members []Member `json:"members"`
}

// PresenceStats are a channel's counts: its members (clients) and their
// distinct authenticated users. It is the result of presence_stats.
type PresenceStats struct {
	Clients int `json:"clients"`
	Users   int `json:"users"`
}

// Presence is the presence push of a channel's window: the members that
// joined and left it (per connection or per user, as the channel's namespace
// says), and its counts when the namespace sends occupancy. Past the
// server's cap of members per push, Join and Leave are left out and only
// Joined and Left say how many there were.
type Presence struct {
	Op      string   `json:"op"`
	Channel string   `json:"channel"`
	Join    []Member `json:"join,omitempty"`
	Leave   []Member `json:"leave,omitempty"`
	// Joined and Left count the joins and leaves of the window, listed or
	// not.
	Joined int `json:"joined,omitempty"`
	Left   int `json:"left,omitempty"`
	// Occupancy is the channel's counts, when they changed since the
	// previous push.
	Occupancy *PresenceStats `json:"occupancy,omitempty"`
}
