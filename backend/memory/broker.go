package memory

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

var (
	_ backend.Broker     = (*Broker)(nil)
	_ backend.PushBroker = (*Broker)(nil)
)

// Broker is the broker of a single node: Publish calls the node's handler
// directly, on the publishing goroutine, when the node has interest in the
// channel. It keeps the contract's per-channel order as long as the caller
// serialises Publish per channel, as a node does.
type Broker struct {
	seed   maphash.Seed
	handle func(*protocol.Publication)
	push   func(channel string, payload []byte)
	shards [shardCount]struct {
		mu       sync.RWMutex
		interest map[string]struct{}
	}
}

// NewBroker returns a broker with no interest in any channel.
func NewBroker() *Broker {
	b := &Broker{seed: maphash.MakeSeed()}
	for i := range b.shards {
		b.shards[i].interest = make(map[string]struct{})
	}
	return b
}

// Register implements backend.Broker. It can be called once.
func (b *Broker) Register(handle func(*protocol.Publication)) error {
	if b.handle != nil {
		return errors.New("memory: broker handler already registered")
	}
	b.handle = handle
	return nil
}

// Publish implements backend.Broker.
func (b *Broker) Publish(ctx context.Context, pub *protocol.Publication) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := &b.shards[shardOf(b.seed, pub.Channel)]
	sh.mu.RLock()
	_, ok := sh.interest[pub.Channel]
	sh.mu.RUnlock()
	if ok && b.handle != nil {
		b.handle(pub)
	}
	return nil
}

// RegisterPush implements backend.PushBroker. It can be called once.
func (b *Broker) RegisterPush(handle func(channel string, payload []byte)) error {
	if b.push != nil {
		return errors.New("memory: broker push handler already registered")
	}
	b.push = handle
	return nil
}

// Push implements backend.PushBroker: it calls the push handler directly, on
// the caller's goroutine, when the node has interest in the channel.
func (b *Broker) Push(ctx context.Context, channel string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := &b.shards[shardOf(b.seed, channel)]
	sh.mu.RLock()
	_, ok := sh.interest[channel]
	sh.mu.RUnlock()
	if ok && b.push != nil {
		b.push(channel, payload)
	}
	return nil
}

// Subscribe implements backend.Broker.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := &b.shards[shardOf(b.seed, channel)]
	sh.mu.Lock()
	sh.interest[channel] = struct{}{}
	sh.mu.Unlock()
	return nil
}

// Unsubscribe implements backend.Broker. It takes effect at once.
func (b *Broker) Unsubscribe(_ context.Context, channel string) error {
	sh := &b.shards[shardOf(b.seed, channel)]
	sh.mu.Lock()
	delete(sh.interest, channel)
	sh.mu.Unlock()
	return nil
}
