package tether

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Node. Start from DefaultConfig: the zero value is not valid.
type Config struct {
	// HTTPAddr is where the node serves its pages, API and WebSocket endpoints.
	// Empty: no listener; mount Handler in your own server. Defaults to
	// 127.0.0.1:8080.
	HTTPAddr string
	// TCPAddr is where the node serves the protocol as newline-delimited JSON
	// over TCP. Empty: no TCP listener. Defaults to 127.0.0.1:7070.
	TCPAddr string
	// GRPCAddr is where the node serves gRPC: the Connect stream, the server
	// API, health and reflection. Empty: no gRPC listener. Defaults to
	// 127.0.0.1:9090.
	GRPCAddr string
	// TLSCertFile and TLSKeyFile, both set, make every listener (HTTP and
	// WebSocket, TCP, gRPC) serve TLS with this PEM certificate and key.
	// Defaults to none: plaintext.
	TLSCertFile string
	TLSKeyFile  string
	// AllowedOrigins lists browser origins (scheme://host[:port], or "*") allowed
	// to open WebSockets besides the page's own host. Defaults to none.
	AllowedOrigins []string
	// APIKey authorises the server API (Authorization: Bearer <key>). Empty: the
	// API answers loopback peers only.
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
	// is a slow consumer and is closed with 4001. Defaults to 1 MiB.
	MaxOutbound int
	// MaxConns caps open connections on each transport (WebSocket, TCP, gRPC
	// streams); more are refused (503, a disconnect line, RESOURCE_EXHAUSTED).
	// Defaults to 100000.
	MaxConns int
	// MaxSubscriptions caps the channels one connection subscribes to. Defaults to 128.
	MaxSubscriptions int
	// MaxChannels caps the channels the node holds at once (a channel lives while
	// it has subscribers or history); a publish or subscribe that would create
	// one more gets too_many_channels. Defaults to 100000.
	MaxChannels int
	// MaxChannelLength caps a channel name, in bytes. Defaults to 255.
	MaxChannelLength int
	// CommandRate caps the commands per second of one connection, with bursts of
	// CommandBurst; 0 means no limit. Default 100 per second, bursts of 200.
	CommandRate  float64
	CommandBurst int

	// Compression negotiates permessage-deflate (RFC 7692) with the WebSocket
	// clients that offer it (every browser does), on /ws and /ws/echo. A
	// publication is compressed once and the same frame goes to every
	// subscriber that negotiated it; messages clients compress are inflated
	// within MaxMessageSize. Defaults to true.
	Compression bool
	// CompressionMinSize is the size, in bytes, below which a message goes
	// uncompressed. Defaults to 256.
	CompressionMinSize int
	// CompressionLevel is the deflate level, from 1 (fastest) to 9 (smallest).
	// Defaults to 1.
	CompressionLevel int

	// HistorySize is how many publications each channel keeps for history and
	// recovery. Defaults to 100.
	HistorySize int
	// HistoryTTL is how long a publication is kept. Defaults to 5m.
	HistoryTTL time.Duration

	// Logger receives the node's logs. Defaults to discarding them.
	Logger *slog.Logger
	// Registry is where the node registers its Prometheus metrics (served on
	// /metrics), with Go runtime and process collectors. Defaults to a new
	// registry per node; Prometheus's global registry is never used.
	Registry *prometheus.Registry
}

// DefaultConfig returns a new Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:           "127.0.0.1:8080",
		TCPAddr:            "127.0.0.1:7070",
		GRPCAddr:           "127.0.0.1:9090",
		PingInterval:       25 * time.Second,
		PongTimeout:        10 * time.Second,
		CloseTimeout:       time.Second,
		MaxMessageSize:     64 << 10,
		MaxOutbound:        1 << 20,
		MaxConns:           100_000,
		MaxSubscriptions:   128,
		MaxChannels:        100_000,
		MaxChannelLength:   255,
		CommandRate:        100,
		CommandBurst:       200,
		Compression:        true,
		CompressionMinSize: 256,
		CompressionLevel:   1,
		HistorySize:        100,
		HistoryTTL:         5 * time.Minute,
	}
}

// Validate reports the first setting that cannot work.
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
	check(c.MaxSubscriptions > 0, "max subscriptions must be positive, not %d", c.MaxSubscriptions)
	check(c.MaxChannels > 0, "max channels must be positive, not %d", c.MaxChannels)
	check(c.MaxChannelLength > 0, "max channel length must be positive, not %d", c.MaxChannelLength)
	check(c.CommandRate >= 0, "command rate must not be negative, not %g", c.CommandRate)
	check(c.CommandRate == 0 || c.CommandBurst > 0, "command burst must be positive, not %d", c.CommandBurst)
	check(!c.Compression || c.CompressionLevel >= 1 && c.CompressionLevel <= 9, "compression level must be between 1 and 9, not %d", c.CompressionLevel)
	check(c.CompressionMinSize >= 0, "compression minimum size must not be negative, not %d", c.CompressionMinSize)
	check(c.HistorySize >= 0, "history size must not be negative, not %d", c.HistorySize)
	check((c.TLSCertFile == "") == (c.TLSKeyFile == ""), "TLS needs both a certificate and a key file")
	check(c.HistoryTTL >= 0, "history TTL must not be negative, not %v", c.HistoryTTL)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tether: invalid config: %w", err)
	}
	return nil
}
