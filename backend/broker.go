package backend

import (
	"context"

	"github.com/tetherhq/tether/protocol"
)

// Broker carries publications to every node that has interest in their channel.
//
// A node declares interest in a channel with Subscribe when the channel gets its
// first local subscriber, and withdraws it with Unsubscribe after the last. The
// node never calls Subscribe and Unsubscribe for one channel concurrently.
//
// Contract:
//   - Delivery: a publication passed to Publish after Subscribe(channel) has
//     returned on a node reaches that node's handler once, unless the broker
//     fails (at most once: a broker that loses a publication must not invent a
//     replacement; clients find the hole by its offset and recover it from
//     History).
//   - Order from one node: a node calls Publish for one channel one call at a
//     time, in offset order (it serialises History.Append and Publish per
//     channel). Every handler then receives that node's publications of the
//     channel in that order, one handler call at a time.
//   - Order across nodes: when several nodes publish to one channel, a broker
//     spanning nodes must still hand each node's handler the channel's
//     publications in offset order (for instance by delivering from the
//     history stream, where Append and broadcast are one step, or by holding
//     a publication back until the one before it has arrived). The hub drops
//     a publication at or below the last one it took in the same epoch.
//   - After Unsubscribe returns, publications of the channel may still reach the
//     handler for a while (an implementation may linger to save churn); the node
//     ignores them.
//   - The handler is called from the broker's goroutines; it does not block and
//     does not call the broker.
//   - Contexts: Publish and Subscribe called with a done context return its
//     error (errors.Is) and have no effect; Unsubscribe may ignore its context.
//   - Publish, Subscribe and Unsubscribe are safe for concurrent use. A Publish
//     that returns an error may or may not have been delivered.
type Broker interface {
	// Register sets the function that receives this node's publications. The
	// node calls it once, before any other method.
	Register(handle func(*protocol.Publication)) error
	// Publish delivers pub, positioned by History.Append and encoded, to every
	// node with interest in pub.Channel, this one included. It must not modify
	// pub: the same value goes to every local subscriber.
	Publish(ctx context.Context, pub *protocol.Publication) error
	// Subscribe declares this node's interest in channel. Once it returns,
	// publications to channel reach the handler. Subscribing twice is the same as
	// once.
	Subscribe(ctx context.Context, channel string) error
	// Unsubscribe withdraws this node's interest in channel.
	Unsubscribe(ctx context.Context, channel string) error
}

// PushBroker is implemented by Brokers that also carry pushes: messages for a
// channel's subscribers that are not publications (a channel's presence
// changes), so they take no position in its history and are not recovered.
// A node sends its presence pushes through it, so that the subscribers of
// every node get them; with a broker that is not a PushBroker, they reach the
// node's own subscribers only.
//
// Contract:
//   - Delivery: a payload passed to Push after Subscribe(channel) has
//     returned on a node reaches that node's push handler once, unless the
//     broker fails (at most once), with the interest rules of Publish.
//   - Order: one node's pushes of one channel reach each handler in the
//     order of their Push calls (the node makes them one at a time); there
//     is no order between pushes and publications, nor between nodes.
//   - The handler is called from the broker's goroutines, one call at a
//     time per channel; it does not block, does not call the broker and does
//     not keep payload past the call unless it copies it. Push must not keep
//     or modify payload after it returns.
//   - Contexts and errors as Publish's.
type PushBroker interface {
	// RegisterPush sets the function that receives pushes. The node calls
	// it once, before Push.
	RegisterPush(handle func(channel string, payload []byte)) error
	// Push delivers payload, a JSON object, to every node with interest in
	// channel, this one included.
	Push(ctx context.Context, channel string, payload []byte) error
}
