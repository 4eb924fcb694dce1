// Package tether is an embeddable real-time server: it holds many long-lived
// connections and moves messages between them through pub/sub channels, with
// per-channel offsets so that a client that reconnects gets exactly what it
// missed.
//
// A Node serves the WebSocket protocol endpoint (/ws), a WebSocket echo endpoint
// (/ws/echo), the HTTP server API (/api/...) and a chat page (/); the same
// protocol as newline-delimited JSON over TCP (TCPAddr); and gRPC (GRPCAddr):
// the protocol as a stream and the server API. `tether serve` is a thin wrapper
// over it. To embed it:
//
//	cfg := tether.DefaultConfig()
//	cfg.HTTPAddr = "" // mount the handler in your own server instead
//	cfg.TCPAddr, cfg.GRPCAddr = "", "" // no TCP or gRPC listeners
//	node, err := tether.New(cfg)
//	...
//	http.Handle("/rt/", http.StripPrefix("/rt", node.Handler()))
//	node.Publish("news", json.RawMessage(`{"title":"hi"}`))
//	...
//	node.Shutdown(ctx)
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
	"time"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/internal/heartbeat"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/metrics"
	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/internal/wsconn"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/web"
)

// ErrClosed is returned by a Node's methods after Shutdown.
var ErrClosed = errors.New("tether: node is shut down")

// Node is one tether server.
type Node struct {
	cfg      Config
	log      *slog.Logger
	hub      *hub.Hub
	sessions *session.Manager
	beats    *heartbeat.Monitor
	engine   *nbhttp.Engine
	ws       *wsconn.Server
	metrics  *metrics.Metrics
	handler  http.Handler
	ln       *listener
	tls      *tlsConfigs // nil: plaintext
	tr       transports  // TCP and gRPC (transports.go)
	started  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func init() {
	logging.SetLevel(logging.LevelError) // nbio's own logger: errors only
}

// New starts a node: its event loop, heartbeats and, when cfg.HTTPAddr is set,
// its listener.
func New(cfg Config) (*Node, error) {
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
	if cfg.Compression {
		if zip, err = wire.NewCompression(cfg.CompressionLevel, cfg.CompressionMinSize); err != nil {
			n.closeListeners()
			return nil, fmt.Errorf("tether: %w", err)
		}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.hub = hub.New(hub.Config{
		Compression:   zip,
		HistorySize:   cfg.HistorySize,
		HistoryTTL:    cfg.HistoryTTL,
		MaxChannels:   cfg.MaxChannels,
		MaxBatchBytes: cfg.MaxOutbound / 4, // a healthy subscriber never meets the limit in one write
	})
	if err := n.initMetrics(); err != nil {
		n.closeListeners()
		n.hub.Close()
		return nil, err
	}
	n.sessions = session.NewManager(session.Config{
		MaxSubscriptions: cfg.MaxSubscriptions,
		MaxChannelLength: cfg.MaxChannelLength,
		CommandRate:      cfg.CommandRate,
		CommandBurst:     cfg.CommandBurst,
		PingInterval:     cfg.PingInterval,
		ObserveCommand:   n.metrics.ObserveCommand,
	}, n.hub, log, "c")
	n.beats = heartbeat.New(cfg.PingInterval, cfg.PongTimeout, nil)

	ecfg := nbhttp.Config{
		Name:                    "tether",
		ReleaseWebsocketPayload: true,
		MaxLoad:                 cfg.MaxConns + 1024,
		// A backstop under tether's own outbound limit (wsconn): nbio drops a
		// connection whose unsent bytes pass this.
		MaxWriteBufferSize: 2*cfg.MaxOutbound + 64<<10,
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
	n.engine.OnWrittenSize(wsconn.OnWrittenSize)
	n.engine.OnData(wsconn.OnData)
	n.ws = wsconn.New(wsconn.Config{
		Engine:         n.engine,
		Sessions:       n.sessions,
		Heartbeats:     n.beats,
		MaxMessageSize: cfg.MaxMessageSize,
		MaxOutbound:    cfg.MaxOutbound,
		MaxConns:       cfg.MaxConns,
		AllowedOrigins: cfg.AllowedOrigins,
		CloseTimeout:   cfg.CloseTimeout,
		Compression:    zip,
		Logger:         log,
	})
	n.handler = n.routes()
	n.engine.Handler = n.handler
	if err := n.engine.Start(); err != nil {
		n.closeListeners()
		n.hub.Close()
		return nil, fmt.Errorf("tether: start event loop: %w", err)
	}
	if n.ln != nil {
		log.Info("listening", "addr", n.ln.Addr().String(), "chat", tlsCfg.scheme("http", "https")+"://"+n.ln.Addr().String()+"/")
	}

	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.beats.Run(n.ctx) }()
	if cfg.HistoryTTL > 0 {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.sweep(cfg.HistoryTTL / 4) }()
	}
	if err := n.startTransports(); err != nil {
		n.closeListeners() // or stop waits for the accept loops forever
		n.stop(context.Background())
		return nil, err
	}
	return n, nil
}

func (n *Node) sweep(every time.Duration) {
	t := time.NewTicker(max(every, time.Second))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.hub.Sweep()
		}
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
	mux.HandleFunc("POST /api/publish", apiHandler(n, n.apiPublish))
	n.apiRoutes(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", n.serveMetrics)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !n.ready() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /", web.Handler())
	return mux
}

// Publish publishes data, a JSON value, to channel and returns its position.
func (n *Node) Publish(channel string, data json.RawMessage) (protocol.Position, error) {
	if n.ctx.Err() != nil {
		return protocol.Position{}, ErrClosed
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return protocol.Position{}, fmt.Errorf("tether: %w", perr)
	}
	if !json.Valid(data) {
		return protocol.Position{}, fmt.Errorf("tether: data is not valid JSON")
	}
	return n.sessions.Publish(channel, data, nil)
}

// Connections returns the number of open client connections, on every transport.
func (n *Node) Connections() int {
	tcp, grpcStreams := n.transportConns()
	return n.ws.Len() + tcp + grpcStreams
}

// Shutdown stops accepting connections, tells every client to reconnect
// (disconnect push with reconnect:true, close 1001), and waits for them to go
// until ctx ends; then it drops the rest and stops.
func (n *Node) Shutdown(ctx context.Context) error {
	var err error
	n.once.Do(func() {
		if n.ln != nil {
			n.ln.stopAccepting()
		}
		n.closeTransportListeners()
		n.cancel()
		wait := n.shutdownTransports(ctx, protocol.DisconnectShutdown)
		err = errors.Join(n.ws.Shutdown(ctx, protocol.DisconnectShutdown), wait())
		n.stop(ctx)
		n.log.Info("stopped", "err", err)
	})
	return err
}

// stop stops the node's goroutines and event loop. It waits for the event
// loop at most 5s, and past ctx's end only briefly.
func (n *Node) stop(ctx context.Context) {
	n.cancel()
	n.stopTransports()
	// nbio v1.6.12's poller clears its stop flag when its loop starts, so a
	// Stop before the poller goroutine has run is lost and waits forever (a
	// Shutdown right after New). Give the pollers a moment to start, and give
	// up on Stop after a while all the same.
	if d := 100*time.Millisecond - time.Since(n.started); d > 0 {
		time.Sleep(d)
	}
	stopped := make(chan struct{})
	go func() { n.engine.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(stopWait(ctx)):
		n.log.Warn("event loop did not stop in time; leaving it")
	}
	n.wg.Wait()
	n.hub.Close()
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
