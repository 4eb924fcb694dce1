package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
)

// Config configures a Backend. Only URL is required.
type Config struct {
	// URL is the NATS server URL, or several separated by commas.
	URL string
	// Options are extra options of the connection: credentials
	// (natsgo.UserCredentials, natsgo.Token), TLS (natsgo.Secure,
	// natsgo.RootCAs, natsgo.ClientCert). Open sets reconnection itself.
	Options []natsgo.Option
	// Name names this node's connection, and this node in announcements.
	Name string
	// Prefix starts every subject tether uses. Defaults to "tether".
	Prefix string
	// Stream is the JetStream stream of the history. Defaults to "TETHER".
	Stream string
	// Replicas is the stream's replica count. Defaults to 1.
	Replicas int
	// MemoryStorage keeps the stream in memory instead of files.
	MemoryStorage bool
	// HistorySize is how many publications a channel keeps (the stream's max
	// messages per subject). Zero keeps only the latest, for its position.
	HistorySize int
	// HistoryTTL is how long a publication is kept (the stream's max age).
	// Zero keeps it until HistorySize newer ones push it out.
	HistoryTTL time.Duration
	// PresenceBucket is the key-value bucket of presence. Defaults to
	// Stream + "_PRESENCE".
	PresenceBucket string
	// PresenceTTL is how long a member stays in the presence bucket without
	// being added again: the bound on how long the members of a node that
	// died stay listed. Defaults to one minute, as the memory store.
	PresenceTTL time.Duration
	// MaxChannels caps the channels the history holds, all nodes together
	// (the stream's subjects): an Append or Read that would add one more
	// returns backend.ErrTooManyChannels. The count is read from the stream
	// every second, so other nodes can take it past the cap by what they
	// create in a second. Zero: no cap.
	MaxChannels int
	// Linger is how long the Broker keeps a channel's NATS subscription after
	// the node withdrew its interest, so that a subscriber that comes back
	// soon does not churn. Defaults to 2s; negative: none.
	Linger time.Duration
	// Timeout bounds each call to NATS when the caller's context has no
	// deadline. Defaults to 5s.
	Timeout time.Duration
	// Logger receives the backend's logs. Defaults to discarding them.
	Logger *slog.Logger
}

// Errors of Open and of a Backend, testable with errors.Is.
var (
	// ErrUnreachable is returned by Open when no NATS server answers.
	ErrUnreachable = errors.New("nats: no server reachable")
	// ErrDisconnected is returned while the connection to NATS is lost; the
	// Backend reconnects by itself.
	ErrDisconnected = errors.New("nats: disconnected")
)

const (
	defaultPrefix  = "tether"
	defaultStream  = "TETHER"
	defaultLinger  = 2 * time.Second
	defaultTimeout = 5 * time.Second
	// defaultPresenceTTL is the memory store's default too.
	defaultPresenceTTL = time.Minute
	// maxHeads caps the channels whose last position a Backend remembers.
	maxHeads = 1 << 17
)

// Backend is a connection to NATS and the Broker and History over it. All
// methods are safe for concurrent use.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	nc      *natsgo.Conn
	js      jetstream.JetStream
	stream  string
	broker  *Broker
	history *History
	// presence and kv are the presence store and its bucket.
	presence *Presence
	kv       jetstream.KeyValue
	keeper   *keeper
	channels channelCount
	closed   atomic.Bool
	once     sync.Once
	nodes    nodes

	seed  maphash.Seed
	heads [64]struct {
		mu sync.Mutex
		m  map[string]head
	}
}

// head is the last message of a channel's subject, as a node last saw it.
type head struct {
	seq    uint64 // its stream sequence; 0: the subject is empty
	prev   uint64 // the sequence of the message before it on the subject
	epoch  string
	offset uint64
	at     time.Time // when it was stored; zero when this node does not know
}

// Open connects to NATS, creates the history stream or updates its settings,
// and returns the Backend. A server that cannot be reached is ErrUnreachable.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats: Config.URL is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = defaultPrefix
	}
	if cfg.Stream == "" {
		cfg.Stream = defaultStream
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.PresenceBucket == "" {
		cfg.PresenceBucket = cfg.Stream + "_PRESENCE"
	}
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = defaultPresenceTTL
	}
	if cfg.Linger == 0 {
		cfg.Linger = defaultLinger
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, stream: cfg.Stream, seed: maphash.MakeSeed()}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for i := range b.heads {
		b.heads[i].m = make(map[string]head)
	}
	b.broker = &Broker{b: b, subs: make(map[string]*interest)}
	b.history = &History{b: b}
	b.presence = &Presence{b: b}
	opts := append([]natsgo.Option{
		natsgo.Name(cfg.Name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
		natsgo.ReconnectJitter(100*time.Millisecond, time.Second),
		// Never buffer while disconnected: a publish then fails, it is not
		// sent later out of order or lost silently.
		natsgo.ReconnectBufSize(-1),
		natsgo.Timeout(cfg.Timeout),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) { b.log.Warn("nats: disconnected", "err", err) }),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) { b.log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted()) }),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, s *natsgo.Subscription, err error) {
			b.log.Warn("nats: async error", "subject", subjectOf(s), "err", err)
		}),
	}, cfg.Options...)
	nc, err := natsgo.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, redact(cfg.URL), err)
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err == nil {
		err = b.ensureStream(ctx)
	}
	if err == nil {
		err = b.ensureBucket(ctx)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.broker.disp.start(b.broker.receive)
	b.startKeeper()
	return b, nil
}

func subjectOf(s *natsgo.Subscription) string {
	if s == nil {
		return ""
	}
	return s.Subject
}

// redact drops credentials from URLs for errors and logs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme := ""
			if k := strings.Index(u, "://"); k >= 0 && k < at {
				scheme = u[:k+3]
			}
			parts[i] = scheme + "***@" + u[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// ensureStream creates the history stream, or updates its limits to cfg's.
func (b *Backend) ensureStream(ctx context.Context) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	// One more than the history: the channel's last message may be a
	// marker, which holds no publication (Read returns HistorySize at most).
	perSubject := int64(max(b.cfg.HistorySize, 0) + 1)
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              b.stream,
		Description:       "tether history: one subject per channel",
		Subjects:          []string{b.cfg.Prefix + ".h.>"},
		Storage:           b.storage(),
		Replicas:          b.cfg.Replicas,
		MaxMsgsPerSubject: perSubject,
		MaxAge:            max(b.cfg.HistoryTTL, 0),
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", b.stream, err)
	}
	return nil
}

// storage is where the stream and the bucket keep their messages.
func (b *Backend) storage() jetstream.StorageType {
	if b.cfg.MemoryStorage {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// ensureBucket creates the presence bucket, or updates its TTL to cfg's.
func (b *Backend) ensureBucket(ctx context.Context) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.cfg.PresenceBucket,
		Description: "tether presence: one key per channel member",
		History:     1,
		TTL:         b.cfg.PresenceTTL,
		Storage:     b.storage(),
		Replicas:    b.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("nats: presence bucket %s: %w", b.cfg.PresenceBucket, err)
	}
	b.kv = kv
	return nil
}

// Broker returns the backend's Broker.
func (b *Backend) Broker() *Broker { return b.broker }

// History returns the backend's History.
func (b *Backend) History() *History { return b.history }

// Conn returns the backend's NATS connection.
func (b *Backend) Conn() *natsgo.Conn { return b.nc }

// Check reports whether the connection to NATS is up: ErrDisconnected while
// it is lost, backend.ErrClosed after Close. It implements backend.Checker.
func (b *Backend) Check(context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	if !b.nc.IsConnected() {
		return ErrDisconnected
	}
	return nil
}

// Close drops the Broker's subscriptions and closes the connection. The
// stream and what it holds stay.
func (b *Backend) Close(ctx context.Context) error {
	b.once.Do(func() {
		b.closed.Store(true)
		b.stopAnnouncing()
		b.stopKeeper()
		b.broker.closeAll()
		fctx, cancel := b.bound(ctx)
		defer cancel()
		if err := b.nc.FlushWithContext(fctx); err != nil && b.nc.IsConnected() {
			b.log.Warn("nats: flush at close", "err", err)
		}
		b.nc.Close()
		b.broker.disp.close()
	})
	return nil
}

// bound gives ctx the backend's timeout when it has no deadline.
func (b *Backend) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.cfg.Timeout)
}

// usable returns the error that refuses a call: the backend closed, ctx
// done, or the connection lost.
func (b *Backend) usable(ctx context.Context) error {
	if b.closed.Load() {
		return backend.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.nc.IsConnected() {
		return ErrDisconnected
	}
	return nil
}

func (b *Backend) historySubject(channel string) string {
	return b.cfg.Prefix + ".h." + token(channel)
}

func (b *Backend) brokerSubject(channel string) string {
	return b.cfg.Prefix + ".b." + token(channel)
}

func (b *Backend) headShard(channel string) *struct {
	mu sync.Mutex
	m  map[string]head
} {
	return &b.heads[maphash.String(b.seed, channel)%uint64(len(b.heads))]
}

// lastHead returns what this node last saw of channel's subject.
func (b *Backend) lastHead(channel string) (head, bool) {
	sh := b.headShard(channel)
	sh.mu.Lock()
	h, ok := sh.m[channel]
	sh.mu.Unlock()
	return h, ok
}

// setHead remembers h as channel's last message. The memory is a hint: an
// Append that trusts a stale one is refused by the stream and reads again.
func (b *Backend) setHead(channel string, h head) {
	sh := b.headShard(channel)
	sh.mu.Lock()
	if _, ok := sh.m[channel]; !ok && len(sh.m) >= maxHeads/len(b.heads) {
		clear(sh.m) // what is dropped is read again from the stream
	}
	sh.m[channel] = h
	sh.mu.Unlock()
}

func (b *Backend) forgetHead(channel string) {
	sh := b.headShard(channel)
	sh.mu.Lock()
	delete(sh.m, channel)
	sh.mu.Unlock()
}

const epochChars = "abcdefghijklmnopqrstuvwxyz234567"

// newEpoch returns a fresh random epoch: 12 base32 characters.
func newEpoch() string {
	var b [12]byte
	for i := range b {
		b[i] = epochChars[rand.IntN(len(epochChars))]
	}
	return string(b[:])
}
