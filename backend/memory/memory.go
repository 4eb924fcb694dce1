// Package memory implements tether's backends for one process: a broker that
// calls the node's handler directly, a history of ring buffers and a presence
// store of maps. They are the defaults of a node without a cluster.
//
// Everything is lost when the process ends: a restarted node starts every
// channel in a new epoch, which tells recovering clients that history is gone.
// The package must not depend on tether's server packages.
package memory

import (
	"context"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"time"
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

// sweeper runs a store's sweep every interval on a goroutine of its own,
// until close.
type sweeper struct {
	stop chan struct{} // closed by close
	done chan struct{} // closed when the goroutine has returned
	once sync.Once
}

// startSweeper starts calling sweep every interval.
func startSweeper(interval time.Duration, sweep func()) *sweeper {
	s := &sweeper{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				sweep()
			}
		}
	}()
	return s
}

// closed reports whether close has been called.
func (s *sweeper) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// close stops the sweeper, holding every one of locks while it marks the
// store closed (so that no holder of one sees it half closed), and waits for
// the goroutine until ctx ends. It can be called more than once.
func (s *sweeper) close(ctx context.Context, locks []sync.Locker) error {
	s.once.Do(func() {
		for _, l := range locks {
			l.Lock()
		}
		close(s.stop)
		for _, l := range locks {
			l.Unlock()
		}
	})
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
