package nats

import (
	"hash/maphash"
	"sync"

	natsgo "github.com/nats-io/nats.go"
)

const (
	// dispatchShards is how many goroutines deliver the Broker's messages.
	dispatchShards = 32
	// dispatchQueue is how many messages a shard holds before nats.go drops
	// more (a slow consumer error, logged): the handler does not block, so
	// only a long gap fill can fill it, and a dropped publication is read
	// from the stream when the channel's next one arrives.
	dispatchQueue = 8192
)

// dispatcher delivers the messages of every channel subscription of a
// Broker on a fixed set of goroutines, one per shard of channels, instead of
// nats.go's goroutine per subscription: a channel's messages all go through
// its shard's queue, in order, and its handler calls never overlap. A gap
// fill (a round trip to the stream) or a message that arrives while its
// subscription is being set up holds up the channels of that shard only.
// docs/decisions/0007-nats-offsets.md measures what it saves.
type dispatcher struct {
	seed   maphash.Seed
	shards [dispatchShards]dispatchShard
	stop   chan struct{}
	wg     sync.WaitGroup
}

// dispatchShard is one goroutine's channels: their subscriptions deliver
// into queue, and subs finds a message's interest by its subject.
type dispatchShard struct {
	queue chan *natsgo.Msg
	mu    sync.Mutex // guards subs
	subs  map[string]*interest
}

// start starts the shards' goroutines, which pass each message to receive.
func (d *dispatcher) start(receive func(*interest, *natsgo.Msg)) {
	d.seed = maphash.MakeSeed()
	d.stop = make(chan struct{})
	for i := range d.shards {
		sh := &d.shards[i]
		sh.queue = make(chan *natsgo.Msg, dispatchQueue)
		sh.subs = make(map[string]*interest)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for {
				select {
				case <-d.stop:
					return
				case m := <-sh.queue:
					sh.mu.Lock()
					in := sh.subs[m.Subject]
					sh.mu.Unlock()
					if in != nil { // else: unsubscribed since
						receive(in, m)
					}
				}
			}
		}()
	}
}

func (d *dispatcher) shard(subject string) *dispatchShard {
	return &d.shards[maphash.String(d.seed, subject)%dispatchShards]
}

// add registers in for the messages of subject and returns the queue its
// subscription must deliver into. It is called before the subscription is
// made, so that none of its messages finds no interest.
func (d *dispatcher) add(subject string, in *interest) chan *natsgo.Msg {
	sh := d.shard(subject)
	sh.mu.Lock()
	sh.subs[subject] = in
	sh.mu.Unlock()
	return sh.queue
}

// remove forgets in, unless another interest took its subject since.
func (d *dispatcher) remove(subject string, in *interest) {
	sh := d.shard(subject)
	sh.mu.Lock()
	if sh.subs[subject] == in {
		delete(sh.subs, subject)
	}
	sh.mu.Unlock()
}

// close ends the shards' goroutines, once the connection is closed (nothing
// delivers into the queues any more).
func (d *dispatcher) close() {
	close(d.stop)
	d.wg.Wait()
}
