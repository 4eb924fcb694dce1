package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth/namespaces"
)

// The listeners of `tether serve` by default. The library's Config has none:
// the binary chooses its ports.
const (
	defaultHTTPAddr = "127.0.0.1:8080"
	defaultTCPAddr  = "127.0.0.1:7070"
	defaultGRPCAddr = "127.0.0.1:9090"
)

// gcPercent is the garbage collector's target `tether serve` runs with unless
// GOGC is set. A connection server's heap is mostly state that lives as long as
// its connections, and Go's default (100) lets the heap grow to twice that
// before it collects, and keeps the pages: at 50, memory per idle connection is
// about a quarter lower, for a few percent more CPU where the server allocates
// (opening connections, publishing through the API); fan-out and echo
// allocate nothing per message (docs/benchmarks.md, issue 9).
const gcPercent = 50

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := tether.DefaultConfig()
	cfg.HTTPAddr, cfg.TCPAddr, cfg.GRPCAddr = defaultHTTPAddr, defaultTCPAddr, defaultGRPCAddr
	fs := flag.NewFlagSet("tether serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "address for pages, API and WebSocket")
	fs.StringVar(&cfg.TCPAddr, "tcp-addr", cfg.TCPAddr, "address for the protocol as newline-delimited JSON over TCP (empty: off)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", cfg.GRPCAddr, "address for gRPC: Connect stream, server API, health, reflection (empty: off)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate file: serve TLS on every listener (with --tls-key)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", "", "PEM private key file for --tls-cert")
	origins := (*listFlag)(&cfg.AllowedOrigins)
	fs.Var(origins, "allowed-origins", "comma-separated browser origins allowed besides the page's own host, or *")
	fs.StringVar(&cfg.APIKey, "api-key", "", "key for the server API (Authorization: Bearer <key>); without one the API answers loopback clients only")
	fs.DurationVar(&cfg.PingInterval, "ping-interval", cfg.PingInterval, "how often the server pings each connection")
	fs.DurationVar(&cfg.PongTimeout, "pong-timeout", cfg.PongTimeout, "how long past the ping interval a silent connection is kept")
	fs.DurationVar(&cfg.CloseTimeout, "close-timeout", cfg.CloseTimeout, "how long a closing connection waits for the client's close frame")
	fs.IntVar(&cfg.MaxMessageSize, "max-message-size", cfg.MaxMessageSize, "largest inbound message in bytes (larger: close 1009)")
	fs.IntVar(&cfg.MaxOutbound, "max-outbound", cfg.MaxOutbound, "bytes queued per connection before it is closed as a slow consumer (4001)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most open connections, all transports together")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "most open connections from one IP address, all transports together (0: no limit; behind a proxy, limit there)")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "how long an HTTP connection may take to send its request (the upgrade): slowloris clients are closed at it")
	fs.IntVar(&cfg.MaxSubscriptions, "max-subscriptions", cfg.MaxSubscriptions, "most channels per connection")
	fs.IntVar(&cfg.MaxChannels, "max-channels", cfg.MaxChannels, "most channels the node holds at once")
	fs.IntVar(&cfg.MaxChannelLength, "max-channel-length", cfg.MaxChannelLength, "longest channel name in bytes")
	fs.Float64Var(&cfg.CommandRate, "command-rate", cfg.CommandRate, "commands per second per connection (0: no limit)")
	fs.IntVar(&cfg.CommandBurst, "command-burst", cfg.CommandBurst, "burst of commands allowed above the rate")
	compression := fs.Bool("compression", true, "negotiate permessage-deflate with WebSocket clients that offer it")
	fs.IntVar(&cfg.CompressionMinSize, "compression-min-size", 256, "bytes below which a WebSocket message goes uncompressed")
	fs.IntVar(&cfg.CompressionLevel, "compression-level", 1, "deflate level of WebSocket compression, 1 (fastest) to 9 (smallest)")
	fs.IntVar(&cfg.HistorySize, "history-size", cfg.HistorySize, "publications kept per channel for history and recovery (0: none)")
	fs.DurationVar(&cfg.HistoryTTL, "history-ttl", cfg.HistoryTTL, "how long a publication is kept (0: until newer ones push it out)")
	var af authFlags
	fs.StringVar(&af.hmacSecret, "token-hmac-secret", "", "HS256 secret (at least 32 bytes) for connection and subscription tokens; any token option makes connections authenticate")
	fs.StringVar(&af.publicKey, "token-public-key", "", "PEM file of an RSA (RS256) or P-256 (ES256) public key for tokens")
	fs.StringVar(&af.jwksURL, "token-jwks-url", "", "JWKS URL whose keys verify RS256/ES256 tokens by kid (refetched on an unknown kid, at most once a minute)")
	fs.StringVar(&af.audience, "token-audience", "", "required aud of tokens")
	fs.StringVar(&af.issuer, "token-issuer", "", "required iss of tokens")
	fs.StringVar(&cfg.TokenCookie, "token-cookie", "", "cookie of the WebSocket upgrade request that carries the token (HttpOnly cookie sessions)")
	fs.BoolVar(&cfg.TokenQuery, "token-query", false, "accept the token as ?token= on the WebSocket URL (URLs leak into logs: prefer a header or cookie)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", cfg.ConnectTimeout, "with token options: how long a connection may stay unauthenticated (close 4005; 0: forever)")
	fs.IntVar(&cfg.MaxConnsPerUser, "max-conns-per-user", cfg.MaxConnsPerUser, "most connections authenticated as one user (0: no limit)")
	configFile := fs.String("config", "", "YAML file with namespaces and any of these flags (http_addr: ...); flags and environment override it")
	natsOpts := addNATSFlags(fs, &cfg.NATS)
	shutdownTimeout := fs.Duration("shutdown-timeout", 10*time.Second, "how long shutdown waits for clients to leave")
	allowAnon := fs.Bool("allow-anonymous", false, "without token options: serve on a non-loopback address with no API key; with them: let connections without a token (or a sub) in, anonymous")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "tether serve:", err)
		return 2
	}
	var nss []namespaces.Namespace
	if *configFile != "" {
		fc, err := applyConfigFile(fs, *configFile)
		if err != nil {
			fmt.Fprintln(stderr, "tether serve: --config:", err)
			return 2
		}
		nss = fc.Namespaces
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "tether serve: --log-level:", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		fmt.Fprintf(stderr, "tether serve: --log-format must be text or json, not %q\n", *logFormat)
		return 2
	}
	log := cfg.Logger

	// A flag's 0 means none or no limit, as its help says; to a Config, 0 is
	// the default and a negative value is none.
	noneIfZero(&cfg.CommandRate)
	noneIfZero(&cfg.HistorySize)
	noneIfZero(&cfg.HistoryTTL)
	noneIfZero(&cfg.CompressionMinSize)
	cfg.DisableCompression = !*compression
	noneIfZero(&cfg.ConnectTimeout)
	noneIfZero(&cfg.MaxConnsPerUser)
	noneIfZero(&cfg.MaxConnsPerIP)
	authn, err := af.authenticator(*allowAnon)
	if err != nil {
		fmt.Fprintln(stderr, "tether serve:", err)
		return 2
	}
	if authn != nil {
		cfg.Authenticator = authn
	}
	if authn != nil || len(nss) > 0 {
		def := namespaces.Open
		if authn != nil {
			def = namespaces.Secure // clients publish only where a namespace says so
		}
		z, err := namespaces.New(def, nss)
		if err != nil {
			fmt.Fprintln(stderr, "tether serve: --config:", err)
			return 2
		}
		cfg.Authorizer = z
		if err := channelHistory(&cfg, z, nss, natsOpts.url != ""); err != nil {
			fmt.Fprintln(stderr, "tether serve: --config:", err)
			return 2
		}
	}
	if err := cfg.Validate(); err != nil { // every setting as given: a flag's 0 is not the default
		fmt.Fprintln(stderr, "tether serve:", err)
		return 1
	}

	for _, addr := range []string{cfg.HTTPAddr, cfg.TCPAddr, cfg.GRPCAddr} {
		if addr != "" && cfg.APIKey == "" && !*allowAnon && authn == nil && !loopback(addr) {
			fmt.Fprintf(stderr, "tether serve: refusing to serve on %q with no API key: anyone who can reach it could publish.\n"+
				"Set --api-key (or TETHER_API_KEY), listen on a loopback address, or pass --allow-anonymous.\n", addr)
			return 2
		}
	}
	if cfg.APIKey == "" {
		log.Warn("no API key configured: the server API answers loopback clients only")
	}

	stopNATS, err := natsOpts.apply(&cfg.NATS)
	if err != nil {
		fmt.Fprintln(stderr, "tether serve:", err)
		return 2
	}
	defer stopNATS() // after the node's Shutdown, which closes its NATS connection
	if natsOpts.url == "embedded" {
		log.Info("embedded NATS server", "url", cfg.NATS.URL, "data_dir", natsOpts.dataDir)
	}

	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	node, err := tether.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "tether serve:", err)
		return 1
	}
	secure := cfg.TLSCertFile != ""
	if a := node.Addr(); a != nil {
		if secure {
			fmt.Fprintf(stdout, "tether serving on https://%s/ (chat page), wss://%s/ws\n", a, a)
		} else {
			fmt.Fprintf(stdout, "tether serving on http://%s/ (chat page), ws://%s/ws\n", a, a)
		}
	}
	if a := node.TCPAddr(); a != nil {
		fmt.Fprintf(stdout, "tether TCP (newline-delimited JSON) on %s, TLS %v\n", a, secure)
	}
	if a := node.GRPCAddr(); a != nil {
		fmt.Fprintf(stdout, "tether gRPC on %s, TLS %v\n", a, secure)
	}
	<-ctx.Done()
	log.Info("shutting down", "timeout", *shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in time; remaining connections dropped", "err", err)
		return 1
	}
	return 0
}

// noneIfZero turns a flag's 0 (none, no limit) into a Config's -1.
func noneIfZero[T int | float64 | time.Duration](v *T) {
	if *v == 0 {
		*v = -1
	}
}

// loopback reports whether addr's host only accepts local connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
