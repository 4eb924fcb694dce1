package session

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/presence"
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
	// ConnectTimeout, with an Authenticator, is how long a connection may
	// stay unauthenticated before it is closed (4005); zero: forever.
	ConnectTimeout time.Duration
	// TokenCookie names the cookie of a WebSocket upgrade request that holds
	// the connection token; empty: none.
	TokenCookie string
	// TokenQuery lets a WebSocket upgrade request carry the token as ?token=.
	TokenQuery bool
	// MaxConnsPerUser caps the connections authenticated as one user; zero:
	// no limit.
	MaxConnsPerUser int
	// Context bounds the backend calls sessions make; its end fails them.
	// Defaults to context.Background().
	Context context.Context
	// ObserveCommand, when set, is called after each command with its op (""
	// for one that could not be decoded) and how long it took to handle.
	ObserveCommand func(op string, d time.Duration)
	// Presence keeps the members of the channels whose Authorizer's
	// auth.PresencePolicy says so; nil: no channel keeps presence.
	Presence *presence.Presence
	// MaxPresenceReply caps the encoded size of a presence reply: past it
	// the command gets too_many_members (a reply larger than the
	// connection's outbound limit would close it). Zero: no cap.
	MaxPresenceReply int
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
	AuthFailures      atomic.Int64 // tokens refused at connect, refresh or the upgrade
	ConnectTimeouts   atomic.Int64 // connections closed for not authenticating in time
	TokensExpired     atomic.Int64 // connections closed at their token's expiry
	UserLimited       atomic.Int64 // connections refused by MaxConnsPerUser
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
		sessions map[uint64]*Session   // by the number in the client id: 16-byte entries
		users    map[string][]*Session // authenticated sessions by user
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
		m.shards[i].sessions = make(map[uint64]*Session)
		m.shards[i].users = make(map[string][]*Session)
	}
	return m
}

// Stats returns the manager's counters.
func (m *Manager) Stats() *Stats { return &m.stats }

// Open starts a session on conn, whose peer is unknown.
func (m *Manager) Open(conn Conn) *Session { return m.OpenPeer(conn, Peer{}) }

// OpenPeer starts a session on conn. With an Authenticator, it authenticates
// the token of p's upgrade request, if any (a refusal is answered to the
// first command), or gives the connection ConnectTimeout to connect.
func (m *Manager) OpenPeer(conn Conn, p Peer) *Session {
	n := m.nextID.Add(1)
	s := &Session{id: formatID(m.prefix, n), mgr: m, conn: conn}
	if m.cfg.Authenticator != nil { // otherwise nobody asks about the peer: keep nothing of it
		s.auth = &authState{peer: p} // the transport's headers: startAuth reads them before OpenPeer returns
	}
	sh := &m.shards[n%shardCount]
	sh.mu.Lock()
	sh.sessions[n] = s
	sh.mu.Unlock()
	m.stats.Opened.Add(1)
	if s.auth != nil {
		s.startAuth()
		s.mu.Lock()
		s.auth.peer.Query = nil
		if _, blind := m.cfg.Authenticator.(auth.HeaderBlindAuthenticator); blind || s.auth.identity != nil {
			s.auth.peer.Header = nil // nobody reads them again: keep no copy per connection
		} else {
			s.auth.peer.Header = s.auth.peer.Header.Clone() // the transport may reuse its request
		}
		s.mu.Unlock()
	}
	return s
}

// addUser counts s among user's connections, unless that would pass
// MaxConnsPerUser. Anonymous sessions are not counted.
func (m *Manager) addUser(s *Session, user string) bool {
	if user == "" {
		return true
	}
	sh := &m.shards[maphash.String(m.seed, user)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.users[user]
	if m.cfg.MaxConnsPerUser > 0 && len(set) >= m.cfg.MaxConnsPerUser {
		return false
	}
	sh.users[user] = append(set, s)
	return true
}

func (m *Manager) removeUser(s *Session, user string) {
	if user == "" {
		return
	}
	sh := &m.shards[maphash.String(m.seed, user)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	set := sh.users[user]
	for i, x := range set {
		if x == s {
			set[i] = set[len(set)-1]
			set[len(set)-1] = nil
			set = set[:len(set)-1]
			break
		}
	}
	if len(set) == 0 {
		delete(sh.users, user)
	} else {
		sh.users[user] = set
	}
}

// UserSessions returns the open sessions authenticated as user.
func (m *Manager) UserSessions(user string) []*Session {
	sh := &m.shards[maphash.String(m.seed, user)%shardCount]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return slices.Clone(sh.users[user])
}

func (m *Manager) remove(s *Session) {
	n, _ := m.number(s.id)
	sh := &m.shards[n%shardCount]
	sh.mu.Lock()
	delete(sh.sessions, n)
	sh.mu.Unlock()
}

// number returns the number a client id of m's was made from, and false for
// an id m does not hand out.
func (m *Manager) number(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, m.prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 36, 64)
	return n, err == nil
}

// Get returns the session with the given client id, or nil.
func (m *Manager) Get(id string) *Session {
	n, ok := m.number(id)
	if !ok {
		return nil
	}
	sh := &m.shards[n%shardCount]
	sh.mu.Lock()
	s := sh.sessions[n]
	sh.mu.Unlock()
	if s == nil || s.id != id { // "C9" parses as "c9" does
		return nil
	}
	return s
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
