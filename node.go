// Package tether is an embeddable real-time server: it holds many long-lived
// connections and moves messages between them through pub/sub channels, with
// per-channel offsets so that a client that reconnects gets exactly what it
// missed.
//
// A Node serves the WebSocket protocol endpoint (/ws), a WebSocket echo endpoint
// (/ws/echo), the HTTP server API (/api/...), /metrics, health endpoints and a
// chat page (/) through Handler, or on HTTPAddr; the same protocol as
// newline-delimited JSON over TCP (TCPAddr); and gRPC (GRPCAddr): the protocol
// as a stream and the server API. `tether serve` is a thin wrapper over it.
//
// A zero Config opens no listener and runs with every limit at its default, so
// embedding a node in a Go server is:
//
//	node, err := tether.New(tether.Config{})
//	if err != nil { ... }
//	defer node.Shutdown(ctx) // tells clients to reconnect, then drops the rest
//	mux.Handle("/rt/", http.StripPrefix("/rt", node.Handler())) // /rt/ws, /rt/api/publish, ...
//	pos, err := node.Publish(ctx, "news", json.RawMessage(`{"title":"hi"}`))
//
// The package is wiring: the protocol, the transports and the server API live
// in packages under internal/ (README.md, "Layout"). Importing it changes no
// global state (docs/decisions/nbio-logging.md says how nbio's logger is set).
//
// # Errors
//
// Publish, Broadcast, History and Disconnect check their context first and
// return its error (context.Canceled, context.DeadlineExceeded) when it has
// ended. Their other errors are testable with errors.Is: ErrClosed,
// ErrNoClient, ErrBadRequest, ErrInvalidChannel and ErrTooManyChannels; the
// last three also hold the *protocol.Error a client would get (errors.As).
//
// # Tests
//
// Package tethertest starts a node on loopback for a test and stops it at the
// test's end.
//
// All methods of Node are safe for concurrent use.
package tether

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/metrics"
	"github.com/tetherhq/tether/internal/presence"
	"github.com/tetherhq/tether/internal/serverapi"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/internal/workpool"
	"github.com/tetherhq/tether/internal/wsconn"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/web"
)

// Node is one tether server.
type Node struct {
	cfg      Config
	log      *slog.Logger
	hub      *hub.Hub
	hubRef   atomic.Pointer[hub.Hub] // hub, for the memory history's sweeper
	sessions *session.Manager
	presence *presence.Presence
	beats    *heartbeat.Monitor
	conns    *conns.Registry // every transport's connections: admission, counts, draining
	engine   *nbhttp.Engine
	ws       *wsconn.Server
	metrics  *metrics.Metrics
	api      *serverapi.API
	handler  http.Handler
	ln       *listener
	tls      *tlsConfigs      // nil: plaintext
	tr       transports       // TCP and gRPC (transports.go)
	backends Backends         // in use, defaults filled in
	owned    []backend.Closer // backends the node made, closed at Shutdown
	httpPool *workpool.Pool   // runs HTTP requests with non-memory backends; nil with memory ones
	raw      *rawAPI          // serves API requests from the event loop's bytes; nil under TLS or with httpPool
	started  time.Time
	// handshakeTimeouts counts HTTP connections closed by HandshakeTimeout.
	handshakeTimeouts atomic.Int64

	ctx    context.Context // ends when Shutdown starts
	cancel context.CancelFunc
	// opCtx bounds the backend calls of client commands; it ends once the
	// connections are drained, so that commands still work while they drain.
	opCtx    context.Context
	opCancel context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
}

// New starts a node: its event loop, heartbeats and, when cfg.HTTPAddr is set,
// its listener.
func New(cfg Config) (*Node, error) {
	cfg = cfg.resolved()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tlsCfg, err := loadTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, tls: tlsCfg, started: time.Now()}
	// Listen first: a taken port then fails New before anything has started
	// (stopping an nbio engine right after starting it can hang).
	if err := n.listen(); err != nil {
		return nil, err
	}
	var zip *wire.Compression
	if !cfg.DisableCompression {
		if zip, err = wire.NewCompression(cfg.CompressionLevel, cfg.CompressionMinSize); err != nil {
			n.closeListeners()
			return nil, fmt.Errorf("tether: %w", err)
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.opCtx, n.opCancel = context.WithCancel(context.Background())
	var hcfg hub.Config
	if hcfg, err = n.openBackends(); err == nil {
		hcfg.Compression = zip
		n.hub, err = hub.New(hcfg)
	}
	if err == nil {
		n.hubRef.Store(n.hub)
		if err = n.openPresence(); err == nil {
			err = n.initMetrics()
		}
		if err != nil {
			n.hub.Close()
		}
	}
	if err != nil {
		n.closeListeners()
		_ = n.closeBackends(context.Background())
		return nil, err
	}
	n.sessions = session.NewManager(session.Config{
		MaxSubscriptions: cfg.MaxSubscriptions,
		MaxChannelLength: cfg.MaxChannelLength,
		CommandRate:      cfg.CommandRate,
		CommandBurst:     cfg.CommandBurst,
		PingInterval:     cfg.PingInterval,
		Context:          n.opCtx,
		Authenticator:    cfg.Authenticator,
		Authorizer:       cfg.Authorizer,
		ConnectTimeout:   cfg.ConnectTimeout,
		TokenCookie:      cfg.TokenCookie,
		TokenQuery:       cfg.TokenQuery,
		MaxConnsPerUser:  cfg.MaxConnsPerUser,
		ObserveCommand:   n.metrics.ObserveCommand,
		Presence:         n.presence,
		MaxPresenceReply: max(cfg.MaxOutbound-64<<10, cfg.MaxOutbound/2), // room for what is queued already
	}, n.hub, log, clientPrefix(cfg))
	n.conns = conns.New(conns.Config{MaxConns: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP})
	n.beats = heartbeat.New(cfg.PingInterval, cfg.PongTimeout, nil, func(f func(heartbeat.Peer)) {
		n.conns.Each(func(c conns.Conn) {
			if p, ok := c.(heartbeat.Peer); ok { // WebSocket and TCP; gRPC has its own keepalives
				f(p)
			}
		})
	})

	routeNBIOLogs()
	ecfg := nbhttp.Config{
		Name:                    "tether",
		ReleaseWebsocketPayload: true,
		MaxLoad:                 cfg.MaxConns + 1024,
		// A backstop under tether's own outbound limit (wsconn): nbio drops a
		// connection whose unsent bytes pass this.
		MaxWriteBufferSize: 2*cfg.MaxOutbound + 64<<10,
		// The read deadline of a connection until its request is whole:
		// slowloris clients are cut at it. The upgrade clears it.
		KeepaliveTime:  cfg.HandshakeTimeout,
		ServerExecutor: n.httpExecutor(log),
	}
	if n.ln != nil {
		addr := n.ln.Addr().String()
		if tlsCfg != nil {
			ecfg.AddrsTLS = []string{addr}
			ecfg.TLSConfig = tlsCfg.nb
		} else {
			ecfg.Addrs = []string{addr}
		}
		ecfg.Listen = func(string, string) (net.Listener, error) { return n.ln, nil }
	}
	n.engine = nbhttp.NewEngine(ecfg)
	fenceAccepts(n.engine)
	n.engine.OnClose(func(c net.Conn, err error) {
		if n.raw != nil {
			n.raw.forget(c)
		}
		if errors.Is(err, nbio.ErrReadTimeout) { // only HTTP connections have a read deadline (KeepaliveTime)
			n.handshakeTimeouts.Add(1)
		}
	})
	n.engine.OnWrittenSize(wsconn.OnWrittenSize)
	n.ws = wsconn.New(wsconn.Config{
		Engine:         n.engine,
		Sessions:       n.sessions,
		Conns:          n.conns,
		MaxMessageSize: cfg.MaxMessageSize,
		MaxOutbound:    cfg.MaxOutbound,
		AllowedOrigins: cfg.AllowedOrigins,
		CloseTimeout:   cfg.CloseTimeout,
		Compression:    zip,
		Logger:         log,
		Upgraded:       n.upgraded,
	})
	n.api = serverapi.New(serverapi.Config{Backend: apiBackend{n}, APIKey: cfg.APIKey, MaxBodySize: cfg.MaxMessageSize})
	if n.tls == nil && n.httpPool == nil { // plaintext, and requests run on the event loop (httpExecutor)
		n.raw = &rawAPI{api: n.api, keepalive: cfg.HandshakeTimeout}
		n.engine.OnData(n.raw.onData)
	} else {
		n.engine.OnData(wsconn.OnData)
	}
	n.handler = n.routes()
	n.engine.Handler = n.handler
	if err := n.engine.Start(); err != nil {
		n.closeListeners()
		n.hub.Close()
		_ = n.closeBackends(context.Background())
		return nil, fmt.Errorf("tether: start event loop: %w", err)
	}
	if n.ln != nil {
		log.Info("listening", "addr", n.ln.Addr().String(), "chat", tlsCfg.scheme("http", "https")+"://"+n.ln.Addr().String()+"/")
	}

	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.beats.Run(n.ctx) }()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.refreshPresence(n.ctx) }()
	if err := n.startTransports(); err != nil {
		n.closeListeners() // or stop waits for the accept loops forever
		n.stop(context.Background())
		return nil, err
	}
	n.announce()
	return n, nil
}

// The HTTP request workers: at most httpWorkers keep their stacks between
// requests (more requests at once run on goroutines of their own), each until
// it has been idle for httpWorkerIdle.
const (
	httpWorkers    = 256
	httpWorkerIdle = 10 * time.Second
)

// httpExecutor returns what runs the HTTP requests of the event loop. With
// the memory backends no request waits on the network, and each runs on the
// event loop's goroutine, as WebSocket commands do: handing it to another
// goroutine (a wake-up, a stack to grow) cost as much as an API publish
// itself. With others (NATS) a request can wait for a round trip, and runs on
// a worker of package workpool, which keeps its grown stack.
func (n *Node) httpExecutor(log *slog.Logger) func(func()) {
	_, memBroker := n.backends.Broker.(*memory.Broker)
	_, memHistory := n.backends.History.(*memory.History)
	if memBroker && memHistory {
		return func(f func()) { f() }
	}
	n.httpPool = workpool.New(httpWorkers, httpWorkerIdle, log)
	return n.httpPool.Go
}

// upgraded hands an upgraded connection to the listener's deadline fence.
func (n *Node) upgraded(c net.Conn) {
	if n.raw != nil {
		n.raw.forget(c)
	}
	if n.ln != nil {
		n.ln.upgraded(c)
	}
}

// Addr returns the address the node listens on, or nil without HTTPAddr.
func (n *Node) Addr() net.Addr {
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Handler returns the node's HTTP handler: pages, API and WebSocket endpoints.
// Connections it upgrades move to the node's event loop.
func (n *Node) Handler() http.Handler { return n.handler }

func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ws", n.ws.Handler())
	mux.Handle("GET /ws/echo", n.ws.EchoHandler())
	n.api.Routes(mux)
	mux.Handle("GET /api/stats", n.api.Guard(n.statsHandler())) // for the stats page; same access as the API
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", n.api.Guard(n.metrics.Handler())) // same access as the API
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		if !n.backendsReady() {
			http.Error(w, "backend unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /", web.Handler())
	return mux
}

// Publish publishes data, a JSON value, to channel and returns its position.
// It refuses with ctx's error (checked first), ErrClosed, ErrInvalidChannel,
// ErrBadRequest (data that is not JSON) or ErrTooManyChannels, and fails with
// ErrUnavailable when a backend does (the publication may or may not have
// been delivered).
func (n *Node) Publish(ctx context.Context, channel string, data json.RawMessage, opts ...PublishOption) (protocol.Position, error) {
	if err := n.checkPublish(ctx, channel, data); err != nil {
		return protocol.Position{}, err
	}
	return n.publish(ctx, channel, data, applyPublishOptions(opts))
}

// Connections returns the number of open client connections, on every transport.
func (n *Node) Connections() int { return n.conns.Len() }

// Shutdown stops accepting connections, tells every client on every transport
// to reconnect (disconnect push with reconnect:true, close 1001), and waits
// for them to go until ctx ends; then it drops the rest and stops.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.once.Do(func() {
		if n.ln != nil {
			n.ln.stopAccepting()
		}
		n.closeTransportListeners()
		n.cancel()
		err = n.conns.Shutdown(ctx, protocol.DisconnectShutdown)
		n.stopGRPC(ctx)
		n.stop(ctx)
		n.log.Info("stopped", "err", err)
	})
	return err
}

// stop stops the node's goroutines and event loop. It waits for the event
// loop at most 5s, and past ctx's end only briefly.
func (n *Node) stop(ctx context.Context) {
	n.cancel()
	n.stopTransports(ctx)
	n.opCancel()
	// nbio v1.6.12's poller clears its stop flag when its loop starts, so a
	// Stop before the poller goroutine has run is lost and waits forever (a
	// Shutdown right after New). Give the pollers a moment to start, and give
	// up on Stop after a while all the same.
	if d := 100*time.Millisecond - time.Since(n.started); d > 0 {
		time.Sleep(d)
	}
	if !waitAtMost(stopWait(ctx), n.engine.Stop) {
		n.log.Warn("event loop did not stop in time; leaving it")
	}
	n.wg.Wait()
	// The HTTP workers' requests wait on the backends at most their
	// timeouts; the node waits no longer than ctx.
	if n.httpPool != nil && !waitAtMost(stopWait(ctx), n.httpPool.Close) {
		n.log.Warn("HTTP requests still running at shutdown; leaving them")
	}
	n.hub.Close()
	if err := n.closeBackends(ctx); err != nil {
		n.log.Warn("closing backends", "err", err)
	}
}

// waitAtMost runs f on a goroutine of its own and reports whether it
// returned within d; when it did not, f goes on alone.
func waitAtMost(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// stopWait is how long to wait for an nbio engine to stop: 5s, or until just
// after ctx's deadline if that is sooner.
func stopWait(ctx context.Context) time.Duration {
	wait := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, max(time.Until(dl), 0)+100*time.Millisecond)
	}
	return wait
}
