// Package backend defines the roles a tether node delegates to storage and
// messaging systems: a Broker carries publications between nodes, a History
// keeps each channel's recent publications and gives them their positions, and
// a Presence store keeps who is in a channel. Package backend/memory implements
// all three for one process (the default); the contract each implementation must
// keep is written on its interface and checked by the suites in
// backend/backendtest, which every implementation's tests run.
//
// This package holds interfaces and the types they share. It must not hold an
// implementation, and must not depend on tether's server packages.
package backend

import (
	"context"
	"errors"
	"time"
)

// Errors an implementation returns, wrapped or as they are, for callers to test
// with errors.Is. Any other error is a failure of the backend itself (a lost
// connection, a timeout), which tether reports to the client as unavailable.
var (
	// ErrTooManyChannels refuses an operation that would make the backend hold
	// more channels than it is configured for.
	ErrTooManyChannels = errors.New("backend: too many channels")
	// ErrClosed is returned by a backend after Close.
	ErrClosed = errors.New("backend: closed")
)

// Closer is implemented by backends that hold resources (goroutines,
// connections). A node calls Close at shutdown on the backends it created
// itself; backends passed in its Config are the caller's to close.
type Closer interface {
	Close(ctx context.Context) error
}

// Checker is implemented by backends that can tell whether they work now (a
// connection to a cluster that is up or lost). A node reports itself not
// ready while a backend's Check returns an error. Check must return quickly,
// without a round trip.
type Checker interface {
	Check(ctx context.Context) error
}

// Cluster is implemented by backends that span several nodes (the NATS
// ones). A node hands it a function that describes the node; the backend
// announces the node to the others with it, every few seconds, until it is
// closed.
type Cluster interface {
	// Announce starts announcing this node as describe says. A node calls it
	// once; describe must not call the backend.
	Announce(describe func() NodeInfo)
	// Nodes returns the nodes heard from lately, this one included, by name.
	Nodes() []NodeInfo
}

// NodeInfo is what a node tells the others about itself.
type NodeInfo struct {
	// Name is the node's name, unique among the nodes.
	Name string `json:"name"`
	// Connections and Channels are the node's open client connections and
	// the channels it has subscribers to.
	Connections int64 `json:"connections"`
	Channels    int64 `json:"channels"`
	// Seen is when the node last announced itself.
	Seen time.Time `json:"seen"`
}
