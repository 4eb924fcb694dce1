package nats

import (
	"context"
	"sync/atomic"
	"time"
)

// A channel's epoch and offset live in its stream messages, which expire
// with the history TTL. While some node has interest in a channel, that node
// keeps the channel's position past the TTL: when the channel's last
// message is older than half the TTL, it appends a position marker (the last
// publication's epoch and offset, no publication) with the expected last
// sequence, so only one node's marker is stored. A quiet channel with
// subscribers thus keeps its epoch however long it stays quiet; its
// publications still expire, and a client whose position is older than
// what is kept gets recovered:false in the same epoch. A channel nobody is
// subscribed to anywhere loses its position with its last message, and its
// next publication starts a new epoch (docs/cluster.md).

// keepEvery is how often the keeper looks at the channels of this node for
// a history TTL of ttl: a quarter of it, so that a channel's last message is
// at most three quarters of the TTL old when a marker replaces it.
func keepEvery(ttl time.Duration) time.Duration { return max(ttl/4, 10*time.Millisecond) }

// keeper is the goroutine that keeps the positions of quiet channels.
type keeper struct {
	stop chan struct{}
	done chan struct{}
}

// startKeeper starts the keeper when the history expires.
func (b *Backend) startKeeper() {
	if b.cfg.HistoryTTL <= 0 {
		return
	}
	k := &keeper{stop: make(chan struct{}), done: make(chan struct{})}
	b.keeper = k
	go func() {
		defer close(k.done)
		t := time.NewTicker(keepEvery(b.cfg.HistoryTTL))
		defer t.Stop()
		for {
			select {
			case <-k.stop:
				return
			case <-t.C:
				b.keepQuiet(k.stop)
			}
		}
	}()
}

// stopKeeper ends the keeper's goroutine.
func (b *Backend) stopKeeper() {
	if k := b.keeper; k != nil {
		close(k.stop)
		<-k.done
	}
}

// keepQuiet writes a position marker on each channel this node has
// subscribers to whose last message is older than half the TTL.
func (b *Backend) keepQuiet(stop <-chan struct{}) {
	quiet := b.cfg.HistoryTTL / 2
	now := time.Now()
	for _, in := range b.broker.interests() {
		if now.Sub(time.Unix(0, in.touched.Load())) < quiet {
			continue
		}
		select {
		case <-stop:
			return
		default:
		}
		b.keep(in, quiet)
	}
}

// keep writes in's channel's position marker if its last message is older
// than quiet.
func (b *Backend) keep(in *interest, quiet time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	subject := b.historySubject(in.channel)
	last, err := b.last(ctx, subject)
	if err != nil || last.seq == 0 { // nothing to keep: already gone, or never written
		return
	}
	if age := time.Since(last.at); age < quiet {
		in.touched.Store(last.at.UnixNano()) // someone wrote lately: look again later
		return
	}
	_, err = b.history.store(ctx, subject, last.epoch, last.offset, nil, last.seq)
	if err != nil && !isWrongLast(err) { // wrong last: another node wrote first
		b.log.Warn("nats: keeping a quiet channel's position", "channel", in.channel, "err", err)
		return
	}
	in.touched.Store(time.Now().UnixNano())
}

// touch records that in's channel had a message now.
func touch(t *atomic.Int64) { t.Store(time.Now().UnixNano()) }
