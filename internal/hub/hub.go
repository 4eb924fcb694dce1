// Package hub is the local side of a node's channels: it maps each channel to
// the node's subscribers, takes the publications the broker brings and fans
// them out in batches framed once per wire format, and runs publish and
// subscribe against the node's backends (package backend) so that each
// subscriber gets its subscribe reply first, then every later publication once
// and in order.
//
// The hub keeps no history and assigns no offsets: the History backend does.
// It never blocks on a subscriber (Subscriber.Deliver must not block), does no
// I/O of its own and knows nothing of connections or of the protocol's
// commands; sessions (package session) drive it.
//
// Lock order, outermost first (nothing takes an earlier lock while holding a
// later one):
//
//	subscribe lock of a channel (interest changes: Subscribe, Unsubscribe)
//	publish lock of a channel (History.Append then Broker.Publish)
//	channel.mu
//	member.mu (held while a batch or a subscribe reply is written)
//
// Backend calls are made under the subscribe or publish lock of their channel
// only, never under channel.mu or member.mu; the memory broker calls the hub's
// handler, which takes channel.mu (and, delivering to a small channel itself,
// member.mu), from inside Broker.Publish.
package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// Subscriber receives a channel's publications.
type Subscriber interface {
	// Deliver hands over b.Pubs[from:]. It is called from the hub's workers
	// (or, for a channel of a few subscribers, the publisher's goroutine), for
	// one channel at most one batch at a time and in offset order; it must not
	// block, must not call the hub, and must not keep b past the call other than
	// through its frames.
	Deliver(b *wire.Batch, from int)
}

// Config sets the hub's backends and fan-out parameters.
type Config struct {
	// Broker carries publications to the nodes subscribed to their channel.
	// Required; New registers the hub's handler with it.
	Broker backend.Broker
	// History gives publications their positions and keeps them. Required.
	History backend.History
	// Recoverable is told to subscribers: whether History keeps publications,
	// so that recovery can succeed.
	Recoverable bool
	// ChannelRecoverable, when set, says it per channel in place of
	// Recoverable. A subscribe that asks to recover a channel it refuses
	// gets recoverable and recovered false, without a history read.
	ChannelRecoverable func(channel string) bool
	// Workers is the number of goroutines that share one batch's deliveries.
	// Defaults to GOMAXPROCS.
	Workers int
	// ChunkSize is how many subscribers a worker serves per turn when a batch
	// is shared out. Defaults to 512.
	ChunkSize int
	// MaxBatchBytes caps the framed bytes of one batch (one write per
	// subscriber), past the first publication. Zero means no cap.
	MaxBatchBytes int
	// MaxChannels caps the channels with local subscribers the hub holds at
	// once; a subscribe past it gets backend.ErrTooManyChannels. Zero means no
	// limit.
	MaxChannels int
	// Compression compresses batches for subscribers in the
	// wire.WebSocketDeflate format, once per batch. Nil: uncompressed.
	Compression *wire.Compression
}

// ErrAlreadySubbed is returned by Subscribe for a subscriber already in the
// channel.
var ErrAlreadySubbed = errors.New("hub: already subscribed")

const (
	shardCount = 64
	lockCount  = 256 // subscribe and publish locks, by channel hash
)

// Hub holds the channels of one node. All methods are safe for concurrent use.
type Hub struct {
	cfg    Config
	seed   maphash.Seed
	shards [shardCount]shard
	// subLocks serialise interest changes of a channel; pubLocks serialise
	// Append+Publish of a channel, which keeps the broker's order the
	// offsets' order.
	subLocks [lockCount]sync.Mutex
	pubLocks [lockCount]sync.Mutex
	pool     *pool
	// deliveries counts publications handed to subscribers.
	deliveries atomic.Int64
	// channels counts the channels in the shards, for MaxChannels.
	channels atomic.Int64
}

type shard struct {
	mu       sync.Mutex
	channels map[string]*channel
}

// New returns a hub and registers its handler with cfg.Broker. Call Close to
// stop its workers.
func New(cfg Config) (*Hub, error) {
	if cfg.Broker == nil || cfg.History == nil {
		return nil, errors.New("hub: a broker and a history are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 512
	}
	h := &Hub{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	if err := cfg.Broker.Register(h.handle); err != nil {
		return nil, fmt.Errorf("hub: register with the broker: %w", err)
	}
	h.pool = newPool(cfg.Workers)
	return h, nil
}

// Close stops the hub's pool workers once their queued tasks are done. A
// dispatch still running goes on delivering on its own goroutine; stop
// publishing before Close.
func (h *Hub) Close() { h.pool.close() }

func (h *Hub) hash(name string) uint64 { return maphash.String(h.seed, name) }

func (h *Hub) shard(name string) *shard { return &h.shards[h.hash(name)%shardCount] }

// lockChannel returns the named channel, locked, or nil when the node has no
// such channel.
func (h *Hub) lockChannel(name string) *channel {
	s := h.shard(name)
	for {
		s.mu.Lock()
		c := s.channels[name]
		s.mu.Unlock()
		if c == nil {
			return nil
		}
		c.mu.Lock()
		if !c.removed {
			return c
		}
		c.mu.Unlock() // removed between the two locks: look again
	}
}

// lockOrCreate returns the named channel, locked, creating it when needed.
func (h *Hub) lockOrCreate(name string) (*channel, error) {
	s := h.shard(name)
	for {
		s.mu.Lock()
		c := s.channels[name]
		if c == nil {
			if n := h.channels.Add(1); h.cfg.MaxChannels > 0 && n > int64(h.cfg.MaxChannels) {
				h.channels.Add(-1) // reserved first: shards race for the last ones
				s.mu.Unlock()
				return nil, backend.ErrTooManyChannels
			}
			c = &channel{name: name, subs: make(map[Subscriber]*member)}
			s.channels[name] = c
		}
		s.mu.Unlock()
		c.mu.Lock()
		if !c.removed {
			return c, nil
		}
		c.mu.Unlock()
	}
}

// maybeRemove drops c, locked by the caller, when nothing refers to it any more:
// no subscribers, no interest declared to the broker and nothing in flight. It
// unlocks c.
func (h *Hub) maybeRemove(c *channel) {
	if len(c.subs) > 0 || c.interest || c.dispatching {
		c.mu.Unlock()
		return
	}
	c.removed = true
	c.mu.Unlock()
	s := h.shard(c.name)
	s.mu.Lock()
	if s.channels[c.name] == c {
		delete(s.channels, c.name)
		h.channels.Add(-1)
	}
	s.mu.Unlock()
}

// Publish stores data in the channel's history, which gives it its position,
// and hands it to the broker for every node subscribed to the channel. It
// returns the publication's position. When the broker fails after the history
// took the publication, Publish returns the broker's error: the publication is
// kept (recovery finds it) but may not have been delivered live, and the
// caller reports a failure.
func (h *Hub) Publish(ctx context.Context, name string, data json.RawMessage, from *protocol.ClientInfo) (protocol.Position, error) {
	p := &protocol.Publication{Channel: name, Data: data, From: from}
	l := &h.pubLocks[h.hash(name)%lockCount]
	l.Lock()
	defer l.Unlock()
	pos, err := h.cfg.History.Append(ctx, p)
	if err != nil {
		return protocol.Position{}, err
	}
	if err := h.cfg.Broker.Publish(ctx, p); err != nil {
		return protocol.Position{}, fmt.Errorf("hub: publication %d stored but not broadcast: %w", pos.Offset, err)
	}
	return pos, nil
}

// handle takes a publication from the broker: it queues it for the channel's
// local subscribers and starts a dispatch if none runs (on this goroutine for
// a channel of a few subscribers). A publication of a
// channel without local subscribers, or at or below the last one handled in
// the same epoch (late or twice), is dropped.
func (h *Hub) handle(p *protocol.Publication) {
	c := h.lockChannel(p.Channel)
	if c == nil {
		return
	}
	if p.Epoch == c.last.Epoch && p.Offset <= c.last.Offset {
		c.mu.Unlock()
		return
	}
	c.last = protocol.Position{Epoch: p.Epoch, Offset: p.Offset}
	if len(c.subs) == 0 {
		h.maybeRemove(c)
		return
	}
	c.pending = append(c.pending, p)
	if c.dispatching {
		c.mu.Unlock()
		return
	}
	c.dispatching = true
	inline := len(c.subs) <= inlineSubs
	c.mu.Unlock()
	if inline {
		h.dispatch(c)
		return
	}
	go h.dispatch(c)
}

// inlineSubs is the most subscribers a channel may have for handle to
// deliver to them itself, on the publisher's goroutine, rather than on a new
// one: a goroutine start, its wake-up and the growth of its stack cost more
// than a few writes.
const inlineSubs = 32

// SubscribeReply is called by Subscribe with the result, before any
// publication above the result's offset is delivered to the subscriber. It
// must not block or call the hub.
type SubscribeReply func(*protocol.SubscribeResult)

// Subscribe adds s to the channel. With recover set it puts into the result
// the publications after that position, or says recovered:false when it
// cannot. reply is called with the result; s then receives every publication
// above the result's offset, once and in order, and none at or below it.
//
// Publications that arrive while the history is read are held for s and
// delivered right after reply, those above the result's offset only.
func (h *Hub) Subscribe(ctx context.Context, name string, s Subscriber, recover *protocol.Position, reply SubscribeReply) error {
	m := &member{held: new([]*protocol.Publication)}
	if err := h.join(ctx, name, s, m); err != nil {
		return err
	}
	res, err := h.position(ctx, name, recover)
	if err != nil {
		h.Unsubscribe(context.WithoutCancel(ctx), name, s) // undone even when ctx ended the read
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone { // unsubscribed meanwhile: its connection closed
		return nil
	}
	reply(res)
	m.epoch, m.since = res.Epoch, res.Offset
	held := *m.held
	m.held = nil
	if i := m.from(held); i < len(held) {
		b := &wire.Batch{Pubs: held[i:]}
		s.Deliver(b, 0)
		h.deliveries.Add(int64(len(b.Pubs)))
		last := b.Pubs[len(b.Pubs)-1]
		m.epoch, m.since = last.Epoch, last.Offset
	}
	return nil
}

// join adds s to the channel as m, and declares the node's interest to the
// broker when s is the channel's first local subscriber.
func (h *Hub) join(ctx context.Context, name string, s Subscriber, m *member) error {
	l := &h.subLocks[h.hash(name)%lockCount]
	l.Lock()
	defer l.Unlock()
	c, err := h.lockOrCreate(name)
	if err != nil {
		return err
	}
	if _, ok := c.subs[s]; ok {
		c.mu.Unlock()
		return ErrAlreadySubbed
	}
	c.subs[s] = m
	c.snapshot = nil
	declare := !c.interest
	c.mu.Unlock()
	if !declare {
		return nil
	}
	if err := h.cfg.Broker.Subscribe(ctx, name); err != nil {
		c.mu.Lock()
		delete(c.subs, s)
		c.snapshot = nil
		h.maybeRemove(c)
		return err
	}
	c.mu.Lock()
	c.interest = true
	c.mu.Unlock()
	return nil
}

// position reads the channel's position and, with recover, what came after it.
func (h *Hub) position(ctx context.Context, name string, recover *protocol.Position) (*protocol.SubscribeResult, error) {
	recoverable, read := h.cfg.Recoverable, true
	if h.cfg.ChannelRecoverable != nil {
		recoverable = h.cfg.ChannelRecoverable(name)
		read = recoverable // recovery is off for the channel: recovered false
	}
	q := backend.Query{}
	if recover != nil && read {
		q = backend.Query{Since: recover, Limit: backend.NoLimit}
	}
	r, err := h.cfg.History.Read(ctx, name, q)
	if err != nil {
		return nil, err
	}
	res := &protocol.SubscribeResult{Epoch: r.Top.Epoch, Offset: r.Top.Offset, Recoverable: recoverable}
	if recover != nil {
		res.Recovering = true
		if res.Recovered = read && complete(*recover, r); res.Recovered {
			res.Publications = r.Publications
		}
	}
	return res, nil
}

// complete reports whether r holds everything after since, up to its top.
func complete(since protocol.Position, r backend.Result) bool {
	pubs := r.Publications
	switch {
	case since.Epoch != r.Top.Epoch || since.Offset > r.Top.Offset:
		return false
	case since.Offset == r.Top.Offset:
		return true
	case len(pubs) == 0:
		return false
	}
	return pubs[0].Offset == since.Offset+1 && pubs[len(pubs)-1].Offset == r.Top.Offset
}

// Unsubscribe removes s from the channel, and withdraws the node's interest
// from the broker after the last local subscriber. Once it returns, no batch
// reaches s for this subscription: one being delivered to s is waited for, and
// one taken for delivery before is dropped. (Without that, a batch in flight
// could reach a subscriber after it subscribed again, behind the new subscribe
// reply.)
func (h *Hub) Unsubscribe(ctx context.Context, name string, s Subscriber) bool {
	l := &h.subLocks[h.hash(name)%lockCount]
	l.Lock()
	defer l.Unlock()
	c := h.lockChannel(name)
	if c == nil {
		return false
	}
	m, ok := c.subs[s]
	if ok {
		delete(c.subs, s)
		c.snapshot = nil
		m.mu.Lock() // lock order: channel, then member
		m.gone = true
		m.held = nil
		m.mu.Unlock()
	}
	withdraw := len(c.subs) == 0 && c.interest
	if withdraw {
		c.interest = false // publications still on their way find nobody
	}
	h.maybeRemove(c)
	if withdraw {
		// A failure leaves the broker delivering publications nobody takes,
		// until the next Subscribe or its own end: harmless.
		_ = h.cfg.Broker.Unsubscribe(ctx, name)
	}
	return ok
}

// History returns up to limit publications after since (oldest first; limit 0:
// all that are kept) and the channel's current position. A since without an
// epoch means the current one; a since from another epoch is answered from the
// oldest kept publication.
func (h *Hub) History(ctx context.Context, name string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	q := backend.Query{Since: since, Limit: limit}
	if limit <= 0 {
		q.Limit = backend.NoLimit
	}
	r, err := h.cfg.History.Read(ctx, name, q)
	if err != nil {
		return nil, err
	}
	pubs := r.Publications
	if pubs == nil {
		pubs = []*protocol.Publication{}
	}
	return &protocol.HistoryResult{Epoch: r.Top.Epoch, Offset: r.Top.Offset, Publications: pubs}, nil
}

// Stats are counts of the hub's state.
type Stats struct {
	Channels      int // channels with local subscribers
	Subscriptions int
}

// Stats counts channels and subscriptions. It locks every channel in turn.
func (h *Hub) Stats() Stats {
	var st Stats
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		chans := make([]*channel, 0, len(s.channels))
		for _, c := range s.channels {
			chans = append(chans, c)
		}
		s.mu.Unlock()
		for _, c := range chans {
			c.mu.Lock()
			if !c.removed {
				st.Channels++
				st.Subscriptions += len(c.subs)
			}
			c.mu.Unlock()
		}
	}
	return st
}

// Has reports whether the node holds the channel: it has local subscribers,
// or is letting its last one go. It takes only a shard's map lock, which is
// never held with any other lock.
func (h *Hub) Has(name string) bool {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[name] != nil
}

// Intern returns the node's own copy of a channel's name when it holds the
// channel, and name otherwise: a subscriber that keeps the name for as long
// as it is subscribed shares the channel's copy rather than keeping one of
// its own. Like Has, it takes only a shard's map lock.
func (h *Hub) Intern(name string) string {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channels[name]; c != nil {
		return c.name
	}
	return name
}

// Deliveries returns how many publications the hub has handed to subscribers
// (one per publication per subscriber) since it started.
func (h *Hub) Deliveries() int64 { return h.deliveries.Load() }

// channel is one channel's local state, guarded by mu.
type channel struct {
	name    string
	mu      sync.Mutex
	removed bool
	// interest is set while the broker knows this node wants the channel.
	interest bool
	// last is the position of the latest publication taken from the broker.
	last protocol.Position
	// subs maps each subscriber to its membership.
	subs     map[Subscriber]*member
	snapshot []subscription // subs as a slice; nil after a change
	// pending holds publications not yet handed to dispatch.
	pending     []*protocol.Publication
	dispatching bool
}

// member is one subscription of a subscriber to a channel. Its fields are
// guarded by mu, which is held while a batch is delivered to the subscriber.
type member struct {
	mu   sync.Mutex
	gone bool // unsubscribed: deliver nothing more
	// held is set from the subscribe until its reply is written, and
	// deliveries meanwhile go to it; nil after (a pointer, so that the
	// subscription's long idle life costs 8 bytes for it rather than 24).
	held *[]*protocol.Publication
	// epoch and since are the position the subscriber has: deliveries start
	// above it.
	epoch string
	since uint64
}

// from returns the index of the first of pubs the member has not had: one
// above its position, or of another epoch.
func (m *member) from(pubs []*protocol.Publication) int {
	for i, p := range pubs {
		if p.Offset > m.since || p.Epoch != m.epoch {
			return i
		}
	}
	return len(pubs)
}

type subscription struct {
	s Subscriber
	m *member
}

func (c *channel) subscriptions() []subscription {
	if c.snapshot == nil {
		c.snapshot = make([]subscription, 0, len(c.subs))
		for s, m := range c.subs {
			c.snapshot = append(c.snapshot, subscription{s, m})
		}
	}
	return c.snapshot
}
