// Package hub maps channels to their local subscribers and fans publications out
// to them. It gives every publication its channel's next offset, keeps the
// channel's recent history for recovery, and encodes each batch of publications
// once per wire format, handing the same bytes to every subscriber.
//
// The hub never blocks on a subscriber: Subscriber.Deliver must not block. It does
// no I/O of its own and knows nothing of connections or of the protocol's
// commands; sessions (package session) drive it.
package hub

import (
	"encoding/json"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// Subscriber receives a channel's publications.
type Subscriber interface {
	// Deliver hands over b.Pubs[from:]. It is called from the hub's workers, for
	// one channel at most one batch at a time and in offset order; it must not
	// block, must not call the hub, and must not keep b past the call other than
	// through its frames.
	Deliver(b *wire.Batch, from int)
}

// Config sets the hub's history and fan-out parameters.
type Config struct {
	// HistorySize is how many publications a channel keeps for history and
	// recovery. Zero keeps none.
	HistorySize int
	// HistoryTTL is how long a publication is kept. Zero keeps them until they
	// fall out of HistorySize.
	HistoryTTL time.Duration
	// Workers is the number of goroutines that share one batch's deliveries.
	// Defaults to GOMAXPROCS.
	Workers int
	// ChunkSize is how many subscribers a worker serves per turn when a batch
	// is shared out. Defaults to 512.
	ChunkSize int
	// MaxBatchBytes caps the framed bytes of one batch (one write per
	// subscriber), past the first publication. Zero means no cap.
	MaxBatchBytes int
	// MaxChannels caps the channels the hub holds at once (a channel lives while
	// it has subscribers or history). Zero means no limit.
	MaxChannels int
	// Compression compresses batches for subscribers in the
	// wire.WebSocketDeflate format, once per batch. Nil: uncompressed.
	Compression *wire.Compression
	// Now returns the time; defaults to time.Now.
	Now func() time.Time
}

// Errors returned by the hub.
var (
	ErrAlreadySubbed = errors.New("hub: already subscribed")
	// ErrTooManyChannels refuses a publication or subscription that would
	// create a channel past Config.MaxChannels.
	ErrTooManyChannels = errors.New("hub: too many channels")
)

const shardCount = 64

// Hub holds the channels of one node. All methods are safe for concurrent use.
type Hub struct {
	cfg    Config
	seed   maphash.Seed
	shards [shardCount]shard
	pool   *pool
	// deliveries counts publications handed to subscribers.
	deliveries atomic.Int64
	// channels counts the channels in the shards, for MaxChannels.
	channels atomic.Int64
}

type shard struct {
	mu       sync.Mutex
	channels map[string]*channel
}

// New returns a hub. Call Close to stop its workers.
func New(cfg Config) *Hub {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 512
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Hub{cfg: cfg, seed: maphash.MakeSeed(), pool: newPool(cfg.Workers)}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	return h
}

// Close stops the hub's pool workers once their queued tasks are done. A
// dispatch still running goes on delivering on its own goroutine; stop
// publishing before Close.
func (h *Hub) Close() { h.pool.close() }

func (h *Hub) shard(name string) *shard {
	return &h.shards[maphash.String(h.seed, name)%shardCount]
}

// lockChannel returns the named channel, locked, creating it when create is set.
// It returns nil when the channel does not exist and create is false.
func (h *Hub) lockChannel(name string, create bool) *channel {
	c, _ := h.lockOrCreate(name, create)
	return c
}

// lockOrCreate is lockChannel that reports ErrTooManyChannels.
func (h *Hub) lockOrCreate(name string, create bool) (*channel, error) {
	s := h.shard(name)
	for {
		s.mu.Lock()
		c := s.channels[name]
		if c == nil {
			if !create {
				s.mu.Unlock()
				return nil, nil
			}
			if n := h.channels.Add(1); h.cfg.MaxChannels > 0 && n > int64(h.cfg.MaxChannels) {
				h.channels.Add(-1) // reserved first: shards race for the last ones
				s.mu.Unlock()
				return nil, ErrTooManyChannels
			}
			c = newChannel(name, h.cfg.HistorySize)
			s.channels[name] = c
		}
		s.mu.Unlock()
		c.mu.Lock()
		if !c.removed {
			return c, nil
		}
		c.mu.Unlock() // removed between the two locks: look again
	}
}

// maybeRemove drops c, locked by the caller, when nothing refers to it any more:
// no subscribers, no history and nothing in flight. It unlocks c.
func (h *Hub) maybeRemove(c *channel) {
	if len(c.subs) > 0 || c.history.len() > 0 || c.dispatching {
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

// Publish appends data to the channel, gives it the next offset and schedules
// its delivery to every subscriber. It returns the publication's position.
func (h *Hub) Publish(name string, data json.RawMessage, from *protocol.ClientInfo) (protocol.Position, error) {
	c, err := h.lockOrCreate(name, true)
	if err != nil {
		return protocol.Position{}, err
	}
	c.offset++
	p := &protocol.Publication{Channel: name, Epoch: c.epoch, Offset: c.offset, Data: data, From: from}
	if _, err := p.Encode(); err != nil {
		c.offset--
		h.maybeRemove(c)
		return protocol.Position{}, err
	}
	now := h.cfg.Now()
	c.history.prune(now, h.cfg.HistoryTTL)
	c.history.push(p, now)
	pos := protocol.Position{Epoch: c.epoch, Offset: c.offset}
	c.pending = append(c.pending, p)
	start := !c.dispatching && len(c.subs) > 0
	if start {
		c.dispatching = true
	} else if !c.dispatching {
		c.pending = c.pending[:0] // nobody to deliver to
	}
	if start {
		c.mu.Unlock()
		go h.dispatch(c)
		return pos, nil
	}
	h.maybeRemove(c)
	return pos, nil
}

// SubscribeReply is called by Subscribe with the result while the channel is
// locked, so that whatever the callback writes to the subscriber is written
// before any later publication reaches it. It must not block or call the hub.
type SubscribeReply func(*protocol.SubscribeResult)

// Subscribe adds s to the channel. With recover set it puts into the result the
// publications after that position, or says recovered:false when it cannot. s
// receives every publication with an offset above the result's offset, and none
// at or below it.
func (h *Hub) Subscribe(name string, s Subscriber, recover *protocol.Position, reply SubscribeReply) error {
	c, err := h.lockOrCreate(name, true)
	if err != nil {
		return err
	}
	defer h.maybeRemove(c)
	if _, ok := c.subs[s]; ok {
		return ErrAlreadySubbed
	}
	c.history.prune(h.cfg.Now(), h.cfg.HistoryTTL)
	res := &protocol.SubscribeResult{Epoch: c.epoch, Offset: c.offset, Recoverable: h.cfg.HistorySize > 0}
	if recover != nil {
		res.Publications, res.Recovered = c.recover(*recover)
	}
	c.subs[s] = &member{since: c.offset}
	c.snapshot = nil
	reply(res)
	return nil
}

// Unsubscribe removes s from the channel. Once it returns, no batch reaches s
// for this subscription: one being delivered to s is waited for, and one taken
// for delivery before is dropped. (Without that, a batch in flight could reach
// a subscriber after it subscribed again, behind the new subscribe reply.)
func (h *Hub) Unsubscribe(name string, s Subscriber) bool {
	c := h.lockChannel(name, false)
	if c == nil {
		return false
	}
	m, ok := c.subs[s]
	if ok {
		delete(c.subs, s)
		c.snapshot = nil
		m.mu.Lock() // lock order: channel, then member
		m.gone = true
		m.mu.Unlock()
	}
	h.maybeRemove(c)
	return ok
}

// History returns up to limit publications after since (oldest first; limit 0:
// all that are kept) and the channel's current position. A since without an
// epoch means the current one; a since from another epoch is answered from the
// oldest kept publication.
func (h *Hub) History(name string, since *protocol.Position, limit int) *protocol.HistoryResult {
	c := h.lockChannel(name, false)
	if c == nil {
		return &protocol.HistoryResult{Publications: []*protocol.Publication{}}
	}
	defer h.maybeRemove(c)
	c.history.prune(h.cfg.Now(), h.cfg.HistoryTTL)
	var after uint64
	if since != nil && (since.Epoch == "" || since.Epoch == c.epoch) {
		after = since.Offset
	}
	pubs := c.history.after(after)
	if limit > 0 && len(pubs) > limit {
		pubs = pubs[:limit]
	}
	return &protocol.HistoryResult{Epoch: c.epoch, Offset: c.offset, Publications: pubs}
}

// Stats are counts of the hub's state.
type Stats struct {
	Channels      int
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

// Deliveries returns how many publications the hub has handed to subscribers
// (one per publication per subscriber) since it started.
func (h *Hub) Deliveries() int64 { return h.deliveries.Load() }

// Sweep drops expired history and the channels left with nothing. Call it
// periodically (every HistoryTTL/4, say) when HistoryTTL is set.
func (h *Hub) Sweep() {
	now := h.cfg.Now()
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		names := make([]string, 0, len(s.channels))
		for n := range s.channels {
			names = append(names, n)
		}
		s.mu.Unlock()
		for _, n := range names {
			if c := h.lockChannel(n, false); c != nil {
				c.history.prune(now, h.cfg.HistoryTTL)
				h.maybeRemove(c)
			}
		}
	}
}

// channel is one channel's state, guarded by mu.
type channel struct {
	name    string
	mu      sync.Mutex
	removed bool
	epoch   string
	offset  uint64
	history ring
	// subs maps each subscriber to its membership.
	subs     map[Subscriber]*member
	snapshot []subscription // subs as a slice; nil after a change
	// pending holds publications not yet handed to dispatch.
	pending     []*protocol.Publication
	dispatching bool
}

// member is one subscription of a subscriber to a channel.
type member struct {
	since uint64 // the channel's offset at subscribe: batches deliver what is above

	mu   sync.Mutex // held while a batch is delivered to the subscriber
	gone bool       // unsubscribed: deliver nothing more
}

type subscription struct {
	s Subscriber
	m *member
}

func newChannel(name string, historySize int) *channel {
	return &channel{
		name:    name,
		epoch:   newEpoch(),
		subs:    make(map[Subscriber]*member),
		history: ring{buf: make([]entry, 0, min(historySize, 16)), size: historySize},
	}
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

// recover returns what a subscriber at pos missed, and whether that is all of it.
func (c *channel) recover(pos protocol.Position) ([]*protocol.Publication, bool) {
	if pos.Epoch != c.epoch || pos.Offset > c.offset {
		return nil, false
	}
	if pos.Offset == c.offset {
		return nil, true
	}
	if oldest, ok := c.history.oldest(); !ok || oldest > pos.Offset+1 {
		return nil, false
	}
	return c.history.after(pos.Offset), true
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
