package backend

import (
	"context"

	"github.com/tetherhq/tether/protocol"
)

// History keeps each channel's recent publications and gives every publication
// its position in its channel's stream.
//
// Contract:
//   - Atomicity: Append is atomic per channel. Concurrent Appends to one channel
//     get distinct positions, in the order the store took them, with offsets
//     increasing by one from 1 within an epoch. (A store that cannot keep
//     offsets contiguous must document how a client tells a gap from a skip.)
//   - Epochs: an epoch is a non-empty string. A channel's epoch changes
//     exactly when the history behind it was lost (the store restarted empty,
//     the channel's record expired or was deleted), and never otherwise;
//     offsets start again from 1 in a new epoch. A reader that holds a
//     position of another epoch knows it cannot recover. (A store may keep one
//     epoch for all its channels, such as a stream's identity, as long as it
//     changes when any channel's history is lost.)
//   - Window: a store keeps at most its configured number of publications per
//     channel, for at most its configured age; older ones are dropped from the
//     front. Read never returns a publication that was dropped, and returns the
//     ones it does return without holes between them.
//   - Errors: ErrTooManyChannels when an Append or Read would create a channel
//     past the store's limit; ErrClosed after Close; anything else is a
//     failure of the store. An Append that fails may or may not have stored
//     the publication (an acknowledgement can be lost); one refused with
//     ErrTooManyChannels, ErrClosed or a done context has not.
//   - Contexts: every method called with a done context returns its error
//     (errors.Is) and has no effect.
//   - All methods are safe for concurrent use.
type History interface {
	// Append sets pub.Epoch and pub.Offset to pub's new position in
	// pub.Channel's history, encodes it (pub.Encode) before any reader can see
	// it, stores it and returns the position. A pub that does not encode is
	// not stored. Neither the store nor the caller modifies pub afterwards:
	// readers share it.
	Append(ctx context.Context, pub *protocol.Publication) (protocol.Position, error)
	// Read returns publications of channel, oldest first, as q asks, and the
	// channel's top: the position of its latest publication. For a channel
	// that has none yet, the top is offset 0 in the epoch its first
	// publication will get, so that a subscriber that saw nothing can recover
	// from there. (A store with per-channel epochs must remember the channel
	// from then on; one with a store-wide epoch has nothing to write.)
	Read(ctx context.Context, channel string, q Query) (Result, error)
}

// Query says which publications Read returns.
type Query struct {
	// Since asks for the publications after this position. An empty epoch
	// means the channel's current one. Nil, or a position of another epoch,
	// asks for them from the oldest kept.
	Since *protocol.Position
	// Limit caps how many publications are returned: the oldest ones that
	// match. NoLimit returns every one kept; zero (or any other negative
	// value) returns none, only the top: the cheap call a subscribe without
	// recovery makes.
	Limit int
}

// NoLimit is the Query.Limit that returns every publication kept.
const NoLimit = -1

// Result is what Read returns.
type Result struct {
	// Publications are the matching publications, oldest first.
	Publications []*protocol.Publication
	// Top is the position of the channel's latest publication.
	Top protocol.Position
}
