package tether

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tetherhq/tether/auth"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Node. The zero value works: no listeners (mount Handler
// in your own server) and every limit at its default. A zero setting means its
// default, stated on each field; where "none" or "no limit" is a choice, a
// negative value says so.
type Config struct {
	// HTTPAddr is where the node serves its pages, API and WebSocket endpoints,
	// e.g. "127.0.0.1:8080". Empty (the default): no listener; mount Handler in
	// your own server.
	HTTPAddr string
	// TCPAddr is where the node serves the protocol as newline-delimited JSON
	// over TCP. Empty (the default): no TCP listener.
	TCPAddr string
	// GRPCAddr is where the node serves gRPC: the Connect stream, the server
	// API, health and reflection. Empty (the default): no gRPC listener.
	GRPCAddr string
	// TLSCertFile and TLSKeyFile, both set, make every listener (HTTP and
	// WebSocket, TCP, gRPC) serve TLS with this PEM certificate and key.
	// Defaults to none: plaintext.
	TLSCertFile string
	TLSKeyFile  string
	// AllowedOrigins lists browser origins (scheme://host[:port], or "*") allowed
	// to open WebSockets besides the page's own host. Defaults to none.
	AllowedOrigins []string
	// APIKey authorises the server API and /metrics (Authorization: Bearer
	// <key>). Empty: they answer loopback peers only.
	APIKey string

	// PingInterval is how often the server pings each connection. Defaults to 25s.
	PingInterval time.Duration
	// PongTimeout is how long past PingInterval a connection may stay silent
	// before it is closed. Defaults to 10s.
	PongTimeout time.Duration
	// CloseTimeout is how long a closing connection waits for the client's close
	// frame. Defaults to 1s.
	CloseTimeout time.Duration

	// MaxMessageSize caps one inbound message (and an API request body), in
	// bytes; a larger WebSocket message closes the connection with 1009, and so
	// does a longer TCP line (its limit, not counting the newline).
	// Defaults to 65536.
	MaxMessageSize int
	// MaxOutbound caps the bytes queued for one connection; a connection past it
	// is a slow consumer and is closed with 4001. Defaults to 1 MiB, or twice
	// MaxMessageSize if that is more.
	MaxOutbound int
	// MaxConns caps open client connections across all transports together
	// (WebSocket, including /ws/echo, TCP and gRPC streams); more are refused
	// (503 at the upgrade, a disconnect line on TCP, RESOURCE_EXHAUSTED on
	// gRPC). Defaults to 100000.
	MaxConns int
	// MaxConnsPerIP caps the open connections from one remote IP address,
	// all transports together; more are refused (429 at the upgrade, a
	// disconnect line on TCP, RESOURCE_EXHAUSTED on gRPC). Behind a proxy
	// every client has the proxy's address: limit there, and set this
	// negative. Defaults to 1000; negative: no limit.
	MaxConnsPerIP int
	// HandshakeTimeout is how long an HTTP connection may take to send a
	// whole request (the WebSocket upgrade, or an API call), and how long
	// an idle keep-alive connection is kept: a client that sends its
	// upgrade request slowly (slowloris) is closed at it. Defaults to 10s.
	HandshakeTimeout time.Duration
	// MaxSubscriptions caps the channels one connection subscribes to. Defaults to 128.
	MaxSubscriptions int
	// MaxChannels caps the channels the node holds at once (a channel lives while
	// it has subscribers or history); a publish or subscribe that would create
	// one more gets too_many_channels. Defaults to 100000.
	MaxChannels int
	// MaxChannelLength caps a channel name, in bytes. Defaults to 255.
	MaxChannelLength int
	// CommandRate caps the commands per second of one connection, with bursts of
	// CommandBurst. Defaults to 100 per second, bursts of 200; a negative
	// CommandRate means no limit.
	CommandRate  float64
	CommandBurst int

	// DisableCompression turns permessage-deflate (RFC 7692) off. By default
	// it is negotiated with the WebSocket clients that offer it (every
	// browser does), on /ws and /ws/echo: a publication is compressed once
	// and the same frame goes to every subscriber that negotiated it;
	// messages clients compress are inflated within MaxMessageSize.
	DisableCompression bool
	// CompressionMinSize is the size, in bytes, below which a message goes
	// uncompressed. Defaults to 256; negative: compress every message.
	CompressionMinSize int
	// CompressionLevel is the deflate level, from 1 (fastest) to 9 (smallest).
	// Defaults to 1.
	CompressionLevel int

	// HistorySize is how many publications each channel keeps for history and
	// recovery. Defaults to 100; negative: none (no history, no recovery).
	HistorySize int
	// HistoryTTL is how long a publication is kept. Defaults to 5m; negative:
	// until HistorySize newer ones push it out.
	HistoryTTL time.Duration

	// Authenticator, when set, checks the token of every connection's connect
	// command; commands other than connect, ping and pong are refused
	// (unauthorized) until one succeeds. Defaults to none: every connection
	// is anonymous.
	Authenticator auth.Authenticator
	// Authorizer, when set, allows or refuses every subscribe, publish and
	// history of a connection (permission_denied). Defaults to none: all
	// allowed. Package auth/namespaces provides one.
	Authorizer auth.Authorizer
	// ConnectTimeout, with an Authenticator, is how long a connection may
	// stay unauthenticated before it is closed with 4005. Defaults to 10s;
	// negative: no limit.
	ConnectTimeout time.Duration
	// TokenCookie names a cookie of the WebSocket upgrade request that
	// carries the connection token (for browsers with HttpOnly cookie
	// sessions). Defaults to none. Authorization: Bearer is always read.
	TokenCookie string
	// TokenQuery lets the WebSocket upgrade request carry the token as
	// ?token=. URLs end up in logs and browser history: prefer a header or
	// a cookie. Defaults to false.
	TokenQuery bool
	// MaxConnsPerUser caps the connections authenticated as one user; the
	// one over it gets too_many_connections and a close with 4006.
	// Defaults to 100; negative: no limit.
	MaxConnsPerUser int

	// Backends are the broker, history and presence store the node uses.
	// Defaults to the memory ones, or to NATS's when NATS.URL is set.
	Backends Backends
	// NATS, when its URL is set, shares the node's channels with every node on
	// the same NATS: the broker and history not given in Backends are on NATS
	// and JetStream (package backend/nats), opened by New and closed at
	// Shutdown. Defaults to none: the node is alone.
	NATS NATSConfig
	// Presence sets how presence pushes are gathered and members kept alive;
	// which channels keep presence is the Authorizer's to say
	// (auth.PresencePolicy, as auth/namespaces does).
	Presence PresenceConfig

	// Logger receives the node's logs. Defaults to discarding them.
	Logger *slog.Logger
	// Registry is where the node registers its Prometheus metrics (served on
	// /metrics), with Go runtime and process collectors. Defaults to a new
	// registry per node; Prometheus's global registry is never used.
	Registry *prometheus.Registry
}

// The defaults of Config's limits.
const (
	defaultPingInterval     = 25 * time.Second
	defaultPongTimeout      = 10 * time.Second
	defaultCloseTimeout     = time.Second
	defaultMaxMessageSize   = 64 << 10
	defaultMaxOutbound      = 1 << 20
	defaultMaxConns         = 100_000
	defaultMaxSubscriptions = 128
	defaultMaxChannels      = 100_000
	defaultMaxChannelLength = 255
	defaultCommandRate      = 100
	defaultCommandBurst     = 200
	defaultHistorySize      = 100
	defaultHistoryTTL       = 5 * time.Minute
	defaultConnectTimeout   = 10 * time.Second
	defaultMaxConnsPerUser  = 100
	defaultMaxConnsPerIP    = 1000
	defaultHandshakeTimeout = 10 * time.Second

	defaultCompressionMinSize = 256
	defaultCompressionLevel   = 1
)

// DefaultConfig returns a new Config with every limit at its default and no
// listeners: what New makes of a zero Config.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

// withDefaults returns c with each zero limit set to its default.
func (c Config) withDefaults() Config {
	setDefault(&c.PingInterval, defaultPingInterval)
	setDefault(&c.PongTimeout, defaultPongTimeout)
	setDefault(&c.CloseTimeout, defaultCloseTimeout)
	setDefault(&c.MaxMessageSize, defaultMaxMessageSize)
	setDefault(&c.MaxOutbound, max(defaultMaxOutbound, 2*c.MaxMessageSize))
	setDefault(&c.MaxConns, defaultMaxConns)
	setDefault(&c.MaxSubscriptions, defaultMaxSubscriptions)
	setDefault(&c.MaxChannels, defaultMaxChannels)
	setDefault(&c.MaxChannelLength, defaultMaxChannelLength)
	setDefault(&c.CommandRate, defaultCommandRate)
	setDefault(&c.CommandBurst, defaultCommandBurst)
	setDefault(&c.HistorySize, defaultHistorySize)
	setDefault(&c.HistoryTTL, defaultHistoryTTL)
	setDefault(&c.CompressionMinSize, defaultCompressionMinSize)
	setDefault(&c.CompressionLevel, defaultCompressionLevel)
	setDefault(&c.ConnectTimeout, defaultConnectTimeout)
	setDefault(&c.MaxConnsPerUser, defaultMaxConnsPerUser)
	setDefault(&c.MaxConnsPerIP, defaultMaxConnsPerIP)
	setDefault(&c.HandshakeTimeout, defaultHandshakeTimeout)
	return c
}

// resolved is the config a node runs with: c with its defaults, and each
// negative "none" (CommandRate, HistorySize, HistoryTTL, CompressionMinSize,
// ConnectTimeout, MaxConnsPerUser, MaxConnsPerIP) turned into the zero
// that means none to the packages below.
func (c Config) resolved() Config {
	c = c.withDefaults()
	c.CommandRate = max(c.CommandRate, 0)
	c.HistorySize = max(c.HistorySize, 0)
	c.HistoryTTL = max(c.HistoryTTL, 0)
	c.CompressionMinSize = max(c.CompressionMinSize, 0)
	c.ConnectTimeout = max(c.ConnectTimeout, 0)
	c.MaxConnsPerUser = max(c.MaxConnsPerUser, 0)
	c.MaxConnsPerIP = max(c.MaxConnsPerIP, 0)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every setting of c that cannot work, as c stands, without
// defaults: a zero MaxConns, say, is an error here, although New takes it for
// its default. It suits a config meant to be complete, such as DefaultConfig
// edited by flags. New validates c with its defaults filled in.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.PingInterval > 0, "ping interval must be positive, not %v", c.PingInterval)
	check(c.PongTimeout > 0, "pong timeout must be positive, not %v", c.PongTimeout)
	check(c.CloseTimeout > 0, "close timeout must be positive, not %v", c.CloseTimeout)
	check(c.MaxMessageSize >= 128, "max message size must be at least 128 bytes, not %d", c.MaxMessageSize)
	// A publication's frame is larger than the command that carried it (epoch,
	// offset, from), and a subscriber must be able to hold more than one.
	check(c.MaxOutbound >= 2*c.MaxMessageSize, "max outbound (%d) must be at least twice the max message size (%d)", c.MaxOutbound, c.MaxMessageSize)
	check(c.MaxConns > 0, "max conns must be positive, not %d", c.MaxConns)
	check(c.HandshakeTimeout > 0, "handshake timeout must be positive, not %v", c.HandshakeTimeout)
	check(c.MaxSubscriptions > 0, "max subscriptions must be positive, not %d", c.MaxSubscriptions)
	check(c.MaxChannels > 0, "max channels must be positive, not %d", c.MaxChannels)
	check(c.MaxChannelLength > 0, "max channel length must be positive, not %d", c.MaxChannelLength)
	check(c.CommandRate <= 0 || c.CommandBurst > 0, "command burst must be positive, not %d", c.CommandBurst)
	check(c.CompressionLevel >= 1 && c.CompressionLevel <= 9, "compression level must be between 1 and 9, not %d", c.CompressionLevel)
	check((c.TLSCertFile == "") == (c.TLSKeyFile == ""), "TLS needs both a certificate and a key file")
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tether: invalid config: %w", err)
	}
	return nil
}
