package memory

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

var (
	_ backend.History = (*History)(nil)
	_ backend.Closer  = (*History)(nil)
)

// HistoryConfig configures a History.
type HistoryConfig struct {
	// Size is how many publications a channel keeps. Zero keeps none: the
	// store then only gives positions.
	Size int
	// TTL is how long a publication is kept. Zero keeps it until it falls out
	// of Size.
	TTL time.Duration
	// Channel, when set, gives a channel a size and TTL of its own in place
	// of Size and TTL (a namespace's history_size and history_ttl). It is
	// called once, when the store first meets the channel, with a lock of the
	// store held: it must be cheap and must not call the store. Sweeps run
	// at the pace of TTL and MetaTTL; a shorter TTL of a channel's is still
	// applied by every Read and Append.
	Channel func(channel string) (size int, ttl time.Duration)
	// MetaTTL is how long a channel's position (epoch and offset) is kept once
	// it holds no publication and nothing was appended to it. Past it the
	// channel is forgotten, unless Keep holds it, and its next publication
	// starts a new epoch. Defaults to TTL, or to 5 minutes when TTL is zero.
	MetaTTL time.Duration
	// Keep, when set, is asked before a channel is forgotten: a channel for
	// which it returns true is kept (a node keeps the channels it has
	// subscribers to, so that a quiet channel does not change epoch under
	// them). It is called with a lock of the store held: it must not call
	// the store.
	Keep func(channel string) bool
	// MaxChannels caps the channels the store knows at once; Append and Read
	// of one more return backend.ErrTooManyChannels. Zero means no limit.
	MaxChannels int
	// SweepInterval is how often expired publications and channels are
	// dropped. Defaults to a quarter of the shorter of TTL and MetaTTL, at
	// least a second.
	SweepInterval time.Duration
	// Now returns the time. Defaults to time.Now.
	Now func() time.Time
}

// History is an in-memory history: a ring of the last Size publications per
// channel. Positions are contiguous from 1 in each channel's epoch; an epoch
// is drawn at random when the store first meets a channel, so a channel
// forgotten (MetaTTL) or a restarted process starts a new one.
//
// A History runs one goroutine that sweeps expired entries; Close stops it.
type History struct {
	cfg      HistoryConfig
	seed     maphash.Seed
	channels atomic.Int64
	shards   [shardCount]struct {
		mu       sync.Mutex
		channels map[string]*stream
	}
	sweeper *sweeper
}

// stream is one channel's history. Its fields are guarded by its shard's lock.
type stream struct {
	epoch   string
	offset  uint64
	ring    ring
	ttl     time.Duration
	touched time.Time // last Append, or creation
}

// NewHistory returns a History and starts its sweeper.
func NewHistory(cfg HistoryConfig) *History {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MetaTTL <= 0 {
		cfg.MetaTTL = cfg.TTL
		if cfg.MetaTTL <= 0 {
			cfg.MetaTTL = 5 * time.Minute
		}
	}
	if cfg.SweepInterval <= 0 {
		every := cfg.MetaTTL
		if cfg.TTL > 0 {
			every = min(every, cfg.TTL)
		}
		cfg.SweepInterval = max(every/4, time.Second)
	}
	h := &History{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*stream)
	}
	h.sweeper = startSweeper(h.cfg.SweepInterval, h.Sweep)
	return h
}

// lock locks channel's shard and returns its stream, creating it if the store
// does not know the channel, and the function that unlocks the shard; on
// error the shard is unlocked.
func (h *History) lock(channel string) (*stream, func(), error) {
	sh := &h.shards[shardOf(h.seed, channel)]
	sh.mu.Lock()
	if h.sweeper.closed() {
		sh.mu.Unlock()
		return nil, nil, backend.ErrClosed
	}
	s := sh.channels[channel]
	if s == nil {
		if n := h.channels.Add(1); h.cfg.MaxChannels > 0 && n > int64(h.cfg.MaxChannels) {
			h.channels.Add(-1)
			sh.mu.Unlock()
			return nil, nil, backend.ErrTooManyChannels
		}
		size, ttl := h.cfg.Size, h.cfg.TTL
		if h.cfg.Channel != nil {
			size, ttl = h.cfg.Channel(channel)
		}
		s = &stream{epoch: newEpoch(), touched: h.cfg.Now(), ring: ring{size: size}, ttl: ttl}
		sh.channels[channel] = s
	}
	return s, sh.mu.Unlock, nil
}

// Append implements backend.History.
func (h *History) Append(ctx context.Context, pub *protocol.Publication) (protocol.Position, error) {
	if err := ctx.Err(); err != nil {
		return protocol.Position{}, err
	}
	s, unlock, err := h.lock(pub.Channel)
	if err != nil {
		return protocol.Position{}, err
	}
	defer unlock()
	pub.Epoch, pub.Offset = s.epoch, s.offset+1
	if _, err := pub.Encode(); err != nil {
		return protocol.Position{}, err
	}
	s.offset++
	now := h.cfg.Now()
	s.ring.prune(now, s.ttl)
	s.ring.push(pub, now)
	s.touched = now
	return protocol.Position{Epoch: s.epoch, Offset: s.offset}, nil
}

// Read implements backend.History.
func (h *History) Read(ctx context.Context, channel string, q backend.Query) (backend.Result, error) {
	if err := ctx.Err(); err != nil {
		return backend.Result{}, err
	}
	s, unlock, err := h.lock(channel)
	if err != nil {
		return backend.Result{}, err
	}
	defer unlock()
	s.ring.prune(h.cfg.Now(), s.ttl)
	res := backend.Result{Top: protocol.Position{Epoch: s.epoch, Offset: s.offset}}
	if q.Limit == 0 || q.Limit < backend.NoLimit {
		return res, nil
	}
	var after uint64
	if q.Since != nil && (q.Since.Epoch == "" || q.Since.Epoch == s.epoch) {
		after = q.Since.Offset
	}
	res.Publications = s.ring.after(after, q.Limit)
	return res, nil
}

// Len returns the number of channels the store knows.
func (h *History) Len() int { return int(h.channels.Load()) }

// Sweep drops expired publications, and the channels left with nothing past
// MetaTTL that Keep does not hold. The sweeper calls it; tests with their own
// clock call it directly.
func (h *History) Sweep() {
	now := h.cfg.Now()
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.Lock()
		for name, s := range sh.channels {
			s.ring.prune(now, s.ttl)
			if s.ring.len() == 0 && now.Sub(s.touched) > h.cfg.MetaTTL && (h.cfg.Keep == nil || !h.cfg.Keep(name)) {
				delete(sh.channels, name)
				h.channels.Add(-1)
			}
		}
		sh.mu.Unlock()
	}
}

// Close stops the sweeper; the store answers ErrClosed from then on.
func (h *History) Close(ctx context.Context) error {
	locks := make([]sync.Locker, len(h.shards))
	for i := range h.shards {
		locks[i] = &h.shards[i].mu
	}
	return h.sweeper.close(ctx, locks)
}
