// Package memory implements tether's backends for one process: a broker that
// calls the node's handler directly, a history of ring buffers and a presence
// store of maps. They are the defaults of a node without a cluster.
//
// Everything is lost when the process ends: a restarted node starts every
// channel in a new epoch, which tells recovering clients that history is gone.
// The package must not depend on tether's server packages.
package memory

import (
	"hash/maphash"
	"math/rand/v2"
)

const shardCount = 64

// shardOf picks the shard of a channel.
func shardOf(seed maphash.Seed, channel string) int {
	return int(maphash.String(seed, channel) % shardCount)
}

const epochChars = "abcdefghijklmnopqrstuvwxyz234567"

// newEpoch returns a fresh random epoch: 10 base32 characters.
func newEpoch() string {
	var b [10]byte
	for i := range b {
		b[i] = epochChars[rand.IntN(len(epochChars))]
	}
	return string(b[:])
}
