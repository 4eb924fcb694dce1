package session

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
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/protocol"
)

// Config holds the per-session limits.
type Config struct {
	// MaxSubscriptions caps the channels one connection subscribes to.
	MaxSubscriptions int
	// MaxChannelLength caps a channel name, in bytes.
	MaxChannelLength int
	// CommandRate and CommandBurst limit the commands one connection sends per
	// second; zero CommandRate means no limit.
	CommandRate  float64
	CommandBurst int
	// PingInterval is told to clients in the connect result.
	PingInterval time.Duration
	// Authenticator, when set, checks the token of connect, and every
	// command but connect, ping and pong needs a successful connect first.
	Authenticator auth.Authenticator
	// Authorizer, when set, allows or refuses each subscribe, publish and
	// history.
	Authorizer auth.Authorizer
	// Context bounds the backend calls sessions make; its end fails them.
	// Defaults to context.Background().
	Context context.Context
	// ObserveCommand, when set, is called after each command with its op (""
	// for one that could not be decoded) and how long it took to handle.
	ObserveCommand func(op string, d time.Duration)
}

// Stats are counters of session events since the manager started.
type Stats struct {
	Publications      atomic.Int64 // publications accepted, from clients and the API
	SlowConsumers     atomic.Int64 // connections dropped because their buffer was full
	RateLimited       atomic.Int64 // commands refused by the rate limit
	CommandErrors     atomic.Int64 // error replies sent
	RecoveredOK       atomic.Int64 // subscribes that recovered everything asked
	RecoveredFailed   atomic.Int64 // subscribes that could not
	Opened            atomic.Int64 // sessions opened
	HeartbeatTimeouts atomic.Int64 // connections dropped for silence
}

const shardCount = 32

// Manager creates sessions and finds them by client id. It is safe for
// concurrent use.
type Manager struct {
	cfg    Config
	ctx    context.Context
	hub    *hub.Hub
	log    *slog.Logger
	stats  Stats
	nextID atomic.Uint64
	prefix string
	seed   maphash.Seed
	shards [shardCount]struct {
		mu       sync.Mutex
		sessions map[string]*Session
	}
}

// NewManager returns a manager whose sessions use h. prefix starts every client
// id it hands out, to keep ids unique across nodes.
func NewManager(cfg Config, h *hub.Hub, log *slog.Logger, prefix string) *Manager {
	m := &Manager{cfg: cfg, ctx: cfg.Context, hub: h, log: log, prefix: prefix, seed: maphash.MakeSeed()}
	if m.ctx == nil {
		m.ctx = context.Background()
	}
	for i := range m.shards {
		m.shards[i].sessions = make(map[string]*Session)
	}
	return m
}

// Stats returns the manager's counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// Open starts a session on conn.
func (m *Manager) Open(conn Conn) *Session {
	s := &Session{id: formatID(m.prefix, m.nextID.Add(1)), mgr: m, conn: conn}
	sh := &m.shards[maphash.String(m.seed, s.id)%shardCount]
	sh.mu.Lock()
	sh.sessions[s.id] = s
	sh.mu.Unlock()
	m.stats.Opened.Add(1)
	return s
}

func (m *Manager) remove(s *Session) {
	sh := &m.shards[maphash.String(m.seed, s.id)%shardCount]
	sh.mu.Lock()
	delete(sh.sessions, s.id)
	sh.mu.Unlock()
}

// Get returns the session with the given client id, or nil.
func (m *Manager) Get(id string) *Session {
	sh := &m.shards[maphash.String(m.seed, id)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.sessions[id]
}

// Len returns the number of open sessions.
func (m *Manager) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		n += len(sh.sessions)
		sh.mu.Unlock()
	}
	return n
}

// Publish publishes data to a channel on behalf of from (nil: the server). A
// refusal the client can act on comes as a *protocol.Error; a failure of the
// backends as the backend's error.
func (m *Manager) Publish(ctx context.Context, channel string, data json.RawMessage, from *protocol.ClientInfo) (protocol.Position, error) {
	pos, err := m.hub.Publish(ctx, channel, data, from)
	if err != nil {
		return pos, limitError(err)
	}
	m.stats.Publications.Add(1)
	return pos, nil
}

// limitError turns backend.ErrTooManyChannels into its reply error.
func limitError(err error) error {
	if errors.Is(err, backend.ErrTooManyChannels) {
		return protocol.NewError(protocol.ErrTooManyChans, "the server holds its maximum number of channels")
	}
	return err
}
