// Package presence is a node's side of presence: it adds the node's
// connections to the presence store (package backend) when they subscribe to
// a channel that keeps presence and removes them when they go, keeps their
// entries alive with batched refreshes, and turns the changes into presence
// pushes: joins and leaves (per connection or per user) and occupancy,
// coalesced per channel into one push per window, sent through the broker so
// that the subscribers of every node get them.
//
// Whether a user's connection is its first or last in a channel is decided
// by the store (backend.PresenceTracker), which may be shared by several
// nodes, never by this node's connections alone. The package keeps nothing
// per member: per channel, only the window's pending changes, while there
// are some; O(1) work per join or leave, O(1) pushes per window whatever the
// channel's size. The caller knows its connections' channels and hands them
// to Refresh in batches.
//
// A connection must Join a channel at most once before it Leaves it, and
// must Leave every channel it joined: the package does not check.
//
// It does no I/O of its own besides the store and broker calls, and knows
// nothing of connections, sessions or the protocol's commands.
//
// Lock order: shard.mu, then channel.mu; store calls are made under
// channel.mu (which serialises a channel's changes on this node, so that the
// window sees them in the store's order) and never under shard.mu. A push
// goes out under its channel's send lock, with no other lock held.
package presence

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// Defaults of Config.
const (
	DefaultWindow    = 500 * time.Millisecond
	DefaultMaxListed = 100
	refreshBatch     = 1000            // clients per PresenceTracker.Refresh call
	storeTimeout     = 5 * time.Second // bounds the calls a window's end makes
)

// Config configures a Presence.
type Config struct {
	// Store keeps the members. Required. A backend.PresenceTracker gets joins
	// and leaves per user right across nodes; another store gets them per
	// connection, and refreshes by Members and Add.
	Store backend.Presence
	// Broker carries the pushes to every node when it is a
	// backend.PushBroker; otherwise (or when nil) they go to Deliver only.
	Broker backend.Broker
	// Deliver hands a push's payload to this node's subscribers of channel.
	// Required. It is called from the broker's goroutines or the window's
	// timer, must not block, and must not keep payload.
	Deliver func(channel string, payload []byte)
	// Window is how long changes are gathered into one push per channel.
	// Defaults to DefaultWindow (500 ms): a subscriber gets at most two
	// presence pushes per second per node that changes the channel.
	Window time.Duration
	// MaxListed caps the members a push lists, joins and leaves together;
	// past it the push carries only their counts. Defaults to
	// DefaultMaxListed (100).
	MaxListed int
	// Logger takes store and broker failures. Defaults to discarding them.
	Logger *slog.Logger
}

// Stats are counters of a Presence since it started.
type Stats struct {
	Pushes  atomic.Int64 // pushes sent (one per channel per window)
	Changes atomic.Int64 // joins and leaves taken into windows
	Errors  atomic.Int64 // failed store or broker calls
}

const shardCount = 32

// Presence is a node's presence. All methods are safe for concurrent use.
type Presence struct {
	cfg     Config
	tracker backend.PresenceTracker // nil when the store is not one
	pusher  backend.PushBroker      // nil when the broker is not one
	log     *slog.Logger
	seed    maphash.Seed
	stats   Stats
	closed  atomic.Bool
	shards  [shardCount]shard
	// sends serialise the pushes of a channel (by hash), and space them: a
	// push goes out a Window after the previous one of its stripe was
	// delivered to every subscriber, so that no subscriber gets two closer
	// than that even when a delivery pass is slow.
	sends [sendLocks]sendLock
}

const sendLocks = 256

type sendLock struct {
	sync.Mutex
	done time.Time // when the stripe's last push was delivered
}

type shard struct {
	mu       sync.Mutex
	channels map[string]*channel
}

// channel is one channel's presence on this node, while it has a change
// in progress or a window open. Its fields are guarded by mu.
type channel struct {
	name string
	mu   sync.Mutex
	// opts are the options of the latest Join or Leave (the same for every
	// one of a channel)
	opts auth.PresenceOptions
	// removed: dropped from its shard; a Join that finds it looks again.
	removed bool
	// The window: its pending joins and leaves, by who they are about, and
	// whether a flush is scheduled.
	pending   map[key]pending
	scheduled bool
	// stats are the counts after the latest change; sent the ones the last
	// push carried, if hasSent (a channel dropped between windows forgets
	// them, and sends its counts again).
	stats, sent backend.PresenceStats
	hasSent     bool
}

// key is whom a pending change is about: a user (per-user join_leave) or a
// client.
type key struct{ user, client string }

type pending struct {
	m    backend.Member
	join bool
}

// New returns a Presence and registers its push handler with cfg.Broker when
// it is a backend.PushBroker.
func New(cfg Config) (*Presence, error) {
	if cfg.Store == nil || cfg.Deliver == nil {
		return nil, errors.New("presence: a store and a Deliver function are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxListed <= 0 {
		cfg.MaxListed = DefaultMaxListed
	}
	p := &Presence{cfg: cfg, log: cfg.Logger, seed: maphash.MakeSeed()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.tracker, _ = cfg.Store.(backend.PresenceTracker)
	if pb, ok := cfg.Broker.(backend.PushBroker); ok {
		if err := pb.RegisterPush(cfg.Deliver); err != nil {
			return nil, err
		}
		p.pusher = pb
	}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]*channel)
	}
	return p, nil
}

// Stats returns the counters.
func (p *Presence) Stats() *Stats { return &p.stats }

func (p *Presence) shard(name string) *shard {
	return &p.shards[maphash.String(p.seed, name)%shardCount]
}

// lockChannel returns the named channel, locked, creating it when needed.
func (p *Presence) lockChannel(name string) *channel {
	sh := p.shard(name)
	for {
		sh.mu.Lock()
		c := sh.channels[name]
		if c == nil {
			c = &channel{name: name}
			sh.channels[name] = c
		}
		sh.mu.Unlock()
		c.mu.Lock()
		if !c.removed {
			return c
		}
		c.mu.Unlock()
	}
}

// release drops c, locked by the caller, from its shard when it has no
// window open, and unlocks it.
func (p *Presence) release(c *channel) {
	if c.scheduled {
		c.mu.Unlock()
		return
	}
	c.removed = true
	c.mu.Unlock()
	sh := p.shard(c.name)
	sh.mu.Lock()
	if sh.channels[c.name] == c {
		delete(sh.channels, c.name)
	}
	sh.mu.Unlock()
}

// Join adds m to channel's members, with the channel's options opts (which
// must be the same for every Join of the channel, with Track set), and
// takes the change into the channel's window.
func (p *Presence) Join(ctx context.Context, channel string, m backend.Member, opts auth.PresenceOptions) error {
	if p.closed.Load() {
		return backend.ErrClosed
	}
	c := p.lockChannel(channel)
	c.opts = opts
	var ch backend.PresenceChange
	var err error
	if p.tracker != nil {
		ch, err = p.tracker.Join(ctx, channel, m)
	} else if err = p.cfg.Store.Add(ctx, channel, m); err == nil {
		ch = backend.PresenceChange{Member: m, Changed: true, UserChanged: true}
	}
	if err != nil {
		p.stats.Errors.Add(1)
	} else {
		p.note(c, ch, true)
	}
	p.release(c)
	return err
}

// Leave removes client from channel's members, and takes the change into the
// channel's window, with the options opts of its Join.
func (p *Presence) Leave(ctx context.Context, channel, client string, opts auth.PresenceOptions) error {
	c := p.lockChannel(channel)
	c.opts = opts
	var ch backend.PresenceChange
	var err error
	if p.tracker != nil {
		ch, err = p.tracker.Leave(ctx, channel, client)
	} else if err = p.cfg.Store.Remove(ctx, channel, client); err == nil {
		// Without a tracker a leave lists the client id only.
		ch = backend.PresenceChange{Member: backend.Member{Client: client}, Changed: true, UserChanged: true}
	}
	if err != nil {
		// The entry stays in the store until its TTL: no more refreshes.
		p.stats.Errors.Add(1)
		p.log.Warn("presence: leave failed", "channel", channel, "client", client, "err", err)
	} else {
		p.note(c, ch, false)
	}
	p.release(c)
	return err
}

// note takes one change of c, locked, into its window, and schedules the
// window's push when it needs one.
func (p *Presence) note(c *channel, ch backend.PresenceChange, join bool) {
	if !ch.Changed {
		return
	}
	c.stats = ch.Stats // without a tracker: read once per window, by flush
	push := c.opts.Occupancy
	switch c.opts.JoinLeave {
	case auth.JoinLeaveClients:
		p.pend(c, key{client: ch.Member.Client}, ch.Member, join)
		push = true
	case auth.JoinLeaveUsers:
		if ch.UserChanged {
			k := key{user: ch.Member.User}
			if k.user == "" || p.tracker == nil { // without a tracker: per connection
				k = key{client: ch.Member.Client}
			}
			p.pend(c, k, ch.Member, join)
			push = true
		}
	}
	if push && !c.scheduled {
		c.scheduled = true
		time.AfterFunc(p.cfg.Window, func() { p.flush(c) })
	}
}

// pend records a join or leave of k in c's window: a leave cancels a
// pending join of k and a join a pending leave (a reconnect inside the
// window is no news).
func (p *Presence) pend(c *channel, k key, m backend.Member, join bool) {
	p.stats.Changes.Add(1)
	if c.pending == nil {
		c.pending = make(map[key]pending)
	}
	if prev, ok := c.pending[k]; ok && prev.join != join {
		delete(c.pending, k)
		return
	}
	c.pending[k] = pending{m: m, join: join}
}

// flush ends c's window: it sends the push of its pending changes and of
// its counts, if they changed, and opens the next window; a window with
// nothing to send closes it.
func (p *Presence) flush(c *channel) {
	c.mu.Lock()
	c.scheduled = false
	push := protocol.Presence{Op: protocol.PushPresence, Channel: c.name}
	list := len(c.pending) <= p.cfg.MaxListed
	for _, pe := range c.pending {
		if pe.join {
			push.Joined++
			if list {
				push.Join = append(push.Join, wireMember(pe.m))
			}
		} else {
			push.Left++
			if list {
				push.Leave = append(push.Leave, wireMember(pe.m))
			}
		}
	}
	c.pending = nil
	if c.opts.Occupancy && p.tracker == nil { // a store without a tracker may count in O(members): once per window
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		st, err := p.cfg.Store.Stats(ctx, c.name)
		cancel()
		if err != nil {
			p.stats.Errors.Add(1)
			p.log.Warn("presence: counting failed", "channel", c.name, "err", err)
		} else {
			c.stats = st
		}
	}
	if c.opts.Occupancy && (!c.hasSent || c.stats != c.sent) {
		c.sent, c.hasSent = c.stats, true
		push.Occupancy = &protocol.PresenceStats{Clients: c.stats.Clients, Users: c.stats.Users}
	}
	if push.Joined == 0 && push.Left == 0 && push.Occupancy == nil {
		p.release(c) // a quiet window: the channel's next change opens one
		return
	}
	// The window stays open for another Window: what comes meanwhile goes
	// out at its end, so that a channel's pushes are a Window apart.
	c.scheduled = true
	time.AfterFunc(p.cfg.Window, func() { p.flush(c) })
	c.mu.Unlock()
	payload, err := json.Marshal(&push)
	if err != nil { // members' info is valid JSON: cannot happen
		p.stats.Errors.Add(1)
		p.log.Error("presence: encode push", "channel", c.name, "err", err)
		return
	}
	p.stats.Pushes.Add(1)
	l := &p.sends[maphash.String(p.seed, c.name)%sendLocks]
	l.Lock()
	defer l.Unlock()
	if wait := time.Until(l.done.Add(p.cfg.Window)); wait > 0 {
		time.Sleep(wait) // the previous pass was slow: what comes meanwhile waits for the next window
	}
	defer func() { l.done = time.Now() }()
	if p.pusher == nil {
		p.cfg.Deliver(c.name, payload)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := p.pusher.Push(ctx, c.name, payload); err != nil {
		p.stats.Errors.Add(1)
		p.log.Warn("presence: push failed", "channel", c.name, "err", err)
	}
}

// wireMember is m as the protocol carries it.
func wireMember(m backend.Member) protocol.Member {
	return protocol.Member{Client: m.Client, User: m.User, Info: m.Info, ConnectedAt: unixMilli(&m)}
}

// Members returns the channel's members, across nodes, as the protocol
// carries them.
func (p *Presence) Members(ctx context.Context, channel string) ([]protocol.Member, error) {
	ms, err := p.cfg.Store.Members(ctx, channel)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Member, len(ms))
	for i, m := range ms {
		out[i] = wireMember(m)
	}
	return out, nil
}

// Counts returns the channel's counts of clients and users, across nodes.
func (p *Presence) Counts(ctx context.Context, channel string) (protocol.PresenceStats, error) {
	s, err := p.cfg.Store.Stats(ctx, channel)
	return protocol.PresenceStats{Clients: s.Clients, Users: s.Users}, err
}

// Close stops taking joins. Windows already scheduled still send their push.
func (p *Presence) Close() { p.closed.Store(true) }
