package client

import (
	"fmt"

	"github.com/tetherhq/tether/protocol"
)

// EventType says what happened.
type EventType int

// The events a client reports through Options.OnEvent.
const (
	// Connected: a connection is up (the first one, or after a reconnect).
	Connected EventType = iota + 1
	// Disconnected: the connection broke; Err says why. The client reconnects
	// unless it was closed or the server said not to.
	Disconnected
	// Recovered: a subscription was resumed after a reconnect and the server
	// filled the gap: nothing was missed. Position is where it resumed.
	Recovered
	// Gap: the server could not fill the gap of a subscription (recovered:false:
	// history moved on, or the server's epoch changed). Previous is the last
	// position delivered, Position the channel's current one; publications after
	// Position follow. The application should reload its state (History can help).
	Gap
	// Unsubscribed: the server refused to resubscribe after a reconnect, or
	// ended the subscription (ErrUnsubscribed); Err says why. The
	// subscription is over.
	Unsubscribed
	// Join: members joined a subscription's channel (per connection or per
	// user, as the channel's namespace says). Members lists them, unless
	// the server's push had too many to list; Count says how many there
	// were.
	Join
	// Leave: members left a subscription's channel; Members and Count as
	// for Join.
	Leave
	// Occupancy: a subscription's channel's counts changed; Occupancy has
	// them.
	Occupancy
)

// String returns the event's name: "connected", "gap", ...
func (t EventType) String() string {
	switch t {
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Recovered:
		return "recovered"
	case Gap:
		return "gap"
	case Unsubscribed:
		return "unsubscribed"
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Occupancy:
		return "occupancy"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is something that happened to the connection or to a subscription.
type Event struct {
	Type EventType
	// Channel is the subscription's channel (subscription events only).
	Channel string
	// Position is the subscription's position after the event.
	Position protocol.Position
	// Previous is the last position delivered before a Gap.
	Previous protocol.Position
	// Client is the client id the server gave (Connected only).
	Client string
	// Err is why the connection broke (Disconnected) or the subscription ended
	// (Unsubscribed).
	Err error
	// Members are who joined or left (Join, Leave); Count is how many did,
	// listed or not.
	Members []protocol.Member
	Count   int
	// Occupancy is the channel's counts of clients and users (Occupancy).
	Occupancy protocol.PresenceStats
}
