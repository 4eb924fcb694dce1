// Package nats implements tether's Broker, History and Presence on NATS, so
// that several tether nodes share their channels: the Broker carries
// publications on core NATS (one subject per channel, subscribed while the
// node has interest), the History keeps them in one JetStream stream (one
// subject per channel, max messages per subject = history size, max age =
// history TTL), where they survive node restarts and, with replicas, server
// losses, and the Presence keeps channel members in a JetStream key-value
// bucket whose TTL removes the members of a node that died. The Presence is
// a backend.PresenceTracker (a user's first and last tab are decided in the
// bucket, by compare-and-set, for all nodes together: tracker.go) and the
// Broker a backend.PushBroker (presence pushes on the publications'
// subjects, marked by a header, outside the stream).
//
// Open connects and makes sure the stream and the bucket exist; the Backend
// it returns hands out the Broker, the History and the Presence, which share
// its connection. Package
// embedded starts an in-process NATS server with JetStream on disk, for a
// single node with durable history.
//
// Positions: offsets are contiguous per channel across every node. A node
// appends with the expected last sequence of the channel's subject and, when
// another node appended first, reads the new last message and tries again
// (docs/decisions/0007-nats-offsets.md measures what that costs). Each
// stored message carries its epoch and offset in headers. A channel's epoch is
// drawn at random when its subject holds nothing (first use, or after every
// message expired, or the stream was purged or deleted) and is stored with
// its messages, so it survives restarts of every node and changes exactly
// when the history behind it is gone.
//
// Order across nodes: each publication the Broker carries names its stream
// sequence and the sequence of the message before it on the channel's
// subject. A receiving node that sees a link missing reads it from the
// stream before delivering, so its handler gets every channel's publications
// in offset order, with a hole only where the stream no longer has them.
//
// The package must not depend on tether's server packages.
package nats
