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
//   - Order: per channel, the handler receives publications in the order
//     Publish was called for them. Callers publish one channel's publications in
//     offset order (a node serialises History.Append and Publish per channel),
//     so the handler sees them in offset order. A broker spanning several
//     nodes must keep that order across publishing nodes as well.
//   - After Unsubscribe returns, publications of the channel may still reach the
//     handler for a while (an implementation may linger to save churn); the node
//     ignores them.
//   - The handler is called from the broker's goroutines, for one channel at
//     most one call at a time; it does not block and does not call the broker.
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
