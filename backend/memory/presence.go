package memory

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"sync"
	"time"

	"github.com/tetherhq/tether/backend"
)

var (
	_ backend.Presence        = (*Presence)(nil)
	_ backend.PresenceTracker = (*Presence)(nil)
	_ backend.Closer          = (*Presence)(nil)
)

// PresenceConfig configures a Presence.
type PresenceConfig struct {
	// TTL is how long a member stays without being added again. Defaults to
	// one minute.
	TTL time.Duration
	// SweepInterval is how often the members past their TTL are dropped from
	// channels nobody reads. Defaults to a quarter of TTL, at least a second.
	SweepInterval time.Duration
	// Now returns the time. It must not go backwards. Defaults to time.Now.
	Now func() time.Time
}

// Presence is an in-memory presence store: a map of members per channel,
// sharded by channel. Expired members are dropped when their channel is read
// or written, and by a goroutine that sweeps the channels nobody touches;
// Close stops it.
//
// Expiry and Stats cost nothing per member kept: a channel keeps its members
// in the order of their last Add, which is the order they expire in, and
// counts its members per user.
//
// Lock order: one shard lock at a time, nothing taken under it.
type Presence struct {
	cfg     PresenceConfig
	seed    maphash.Seed
	shards  [shardCount]presenceShard
	sweeper *sweeper
}

type presenceShard struct {
	mu       sync.Mutex
	channels map[string]*roster
}

// roster is one channel's members. Its fields are guarded by its shard's lock.
type roster struct {
	members    map[string]*member // by client id
	users      map[string]int     // members per non-empty user
	head, tail *member            // by last Add, oldest first
}

// member is one member of a roster, linked in the order of its last Add:
// a backend.Member packed into 80 bytes (Info as a string, times as Unix
// nanoseconds), where the Member itself and its time of last Add would take
// 112.
type member struct {
	client, user string
	info         string
	connectedAt  int64 // 0: the zero time
	added        int64
	prev, next   *member
}

func (e *member) set(m backend.Member) {
	e.client, e.user, e.info = m.Client, m.User, string(m.Info)
	e.connectedAt = 0
	if !m.ConnectedAt.IsZero() {
		e.connectedAt = m.ConnectedAt.UnixNano()
	}
}

// export returns e as a backend.Member, with an Info of its own.
func (e *member) export() backend.Member {
	m := backend.Member{Client: e.client, User: e.user}
	if e.info != "" {
		m.Info = json.RawMessage(e.info)
	}
	if e.connectedAt != 0 {
		m.ConnectedAt = time.Unix(0, e.connectedAt)
	}
	return m
}

// NewPresence returns a Presence and starts its sweeper.
func NewPresence(cfg PresenceConfig) *Presence {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Minute
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = max(cfg.TTL/4, time.Second)
	}
	p := &Presence{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].channels = make(map[string]*roster)
	}
	p.sweeper = startSweeper(p.cfg.SweepInterval, p.Sweep)
	return p
}

// lock checks ctx, locks channel's shard and returns it with the channel's
// roster, pruned of expired members, or nil when the channel has none; on
// error the shard is unlocked.
func (p *Presence) lock(ctx context.Context, channel string) (*presenceShard, *roster, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	sh := &p.shards[shardOf(p.seed, channel)]
	sh.mu.Lock()
	if p.sweeper.closed() {
		sh.mu.Unlock()
		return nil, nil, backend.ErrClosed
	}
	r := sh.channels[channel]
	if r != nil {
		r.prune(p.cfg.Now(), p.cfg.TTL)
		if len(r.members) == 0 {
			delete(sh.channels, channel)
			r = nil
		}
	}
	return sh, r, nil
}

// Add implements backend.Presence. The store keeps its own copy of m.Info.
func (p *Presence) Add(ctx context.Context, channel string, m backend.Member) error {
	_, err := p.Join(ctx, channel, m)
	return err
}

// Join implements backend.PresenceTracker. The store keeps its own copy of
// m.Info.
func (p *Presence) Join(ctx context.Context, channel string, m backend.Member) (backend.PresenceChange, error) {
	sh, r, err := p.lock(ctx, channel)
	if err != nil {
		return backend.PresenceChange{}, err
	}
	defer sh.mu.Unlock()
	if r == nil {
		r = &roster{members: make(map[string]*member), users: make(map[string]int)}
		sh.channels[channel] = r
	}
	e := r.members[m.Client]
	changed := e == nil
	if changed {
		e = &member{}
		r.members[m.Client] = e
	} else {
		r.unlink(e)
		r.countUser(e.user, -1)
	}
	e.set(m)
	e.added = p.cfg.Now().UnixNano()
	userChanged := changed && (m.User == "" || r.users[m.User] == 0)
	r.countUser(m.User, 1)
	r.pushBack(e)
	return backend.PresenceChange{Member: e.export(), Changed: changed, UserChanged: userChanged, Stats: r.stats()}, nil
}

// Remove implements backend.Presence.
func (p *Presence) Remove(ctx context.Context, channel, client string) error {
	_, err := p.Leave(ctx, channel, client)
	return err
}

// Leave implements backend.PresenceTracker.
func (p *Presence) Leave(ctx context.Context, channel, client string) (backend.PresenceChange, error) {
	sh, r, err := p.lock(ctx, channel)
	if err != nil {
		return backend.PresenceChange{}, err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return backend.PresenceChange{}, nil
	}
	var c backend.PresenceChange
	if e := r.members[client]; e != nil {
		r.remove(e)
		c = backend.PresenceChange{Member: e.export(), Changed: true, UserChanged: e.user == "" || r.users[e.user] == 0}
	}
	c.Stats = r.stats()
	if len(r.members) == 0 {
		delete(sh.channels, channel)
	}
	return c, nil
}

// Refresh implements backend.PresenceTracker.
func (p *Presence) Refresh(ctx context.Context, channel string, clients []string) error {
	sh, r, err := p.lock(ctx, channel)
	if err != nil {
		return err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return nil
	}
	now := p.cfg.Now().UnixNano()
	for _, c := range clients {
		if e := r.members[c]; e != nil {
			r.unlink(e)
			e.added = now
			r.pushBack(e)
		}
	}
	return nil
}

// Members implements backend.Presence. The members come in the order of
// their last Add.
func (p *Presence) Members(ctx context.Context, channel string) ([]backend.Member, error) {
	sh, r, err := p.lock(ctx, channel)
	if err != nil {
		return nil, err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return []backend.Member{}, nil
	}
	out := make([]backend.Member, 0, len(r.members))
	for e := r.head; e != nil; e = e.next {
		out = append(out, e.export())
	}
	return out, nil
}

// Stats implements backend.Presence. It does not allocate.
func (p *Presence) Stats(ctx context.Context, channel string) (backend.PresenceStats, error) {
	sh, r, err := p.lock(ctx, channel)
	if err != nil {
		return backend.PresenceStats{}, err
	}
	defer sh.mu.Unlock()
	if r == nil {
		return backend.PresenceStats{}, nil
	}
	return r.stats(), nil
}

func (r *roster) stats() backend.PresenceStats {
	return backend.PresenceStats{Clients: len(r.members), Users: len(r.users)}
}

// Len returns the number of channels with members, expired ones included
// until they are swept.
func (p *Presence) Len() int {
	n := 0
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		n += len(sh.channels)
		sh.mu.Unlock()
	}
	return n
}

// Sweep drops expired members, and the channels left with none. The sweeper
// calls it; tests with their own clock call it directly.
func (p *Presence) Sweep() {
	now := p.cfg.Now()
	for i := range p.shards {
		sh := &p.shards[i]
		sh.mu.Lock()
		for name, r := range sh.channels {
			r.prune(now, p.cfg.TTL)
			if len(r.members) == 0 {
				delete(sh.channels, name)
			}
		}
		sh.mu.Unlock()
	}
}

// Close stops the sweeper; the store answers ErrClosed from then on. It can be
// called more than once.
func (p *Presence) Close(ctx context.Context) error {
	locks := make([]sync.Locker, len(p.shards))
	for i := range p.shards {
		locks[i] = &p.shards[i].mu
	}
	return p.sweeper.close(ctx, locks)
}

// prune removes the members not added again within ttl: they are at the front.
func (r *roster) prune(now time.Time, ttl time.Duration) {
	for r.head != nil && now.UnixNano()-r.head.added > int64(ttl) {
		r.remove(r.head)
	}
}

func (r *roster) remove(e *member) {
	r.unlink(e)
	r.countUser(e.user, -1)
	delete(r.members, e.client)
}

func (r *roster) countUser(user string, delta int) {
	if user == "" {
		return
	}
	if n := r.users[user] + delta; n > 0 {
		r.users[user] = n
	} else {
		delete(r.users, user)
	}
}

func (r *roster) pushBack(e *member) {
	e.prev, e.next = r.tail, nil
	if r.tail != nil {
		r.tail.next = e
	} else {
		r.head = e
	}
	r.tail = e
}

func (r *roster) unlink(e *member) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = nil, nil
}
