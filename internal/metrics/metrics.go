// Package metrics exposes a node's figures to Prometheus. It reads the counters
// the node keeps anyway (sessions, hub, transports) at scrape time through a
// snapshot function, so that serving metrics adds no work to the hot paths; the
// only thing it measures itself is command latency, by op.
//
// It registers on the registry it is given, never on Prometheus's global one,
// and must not keep state of its own beyond its collectors.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tetherhq/tether/protocol"
)

// Namespace prefixes every tether metric name.
const Namespace = "tether"

// Snapshot is a node's counters and gauges at one moment. Counters count from
// the node's start.
type Snapshot struct {
	// Transports holds each transport's connections and traffic, by name
	// ("websocket", "tcp", "grpc").
	Transports map[string]Transport
	// Channels and Subscriptions are the hub's current counts.
	Channels      int
	Subscriptions int
	// Publications counts publications accepted, from clients and the API.
	Publications int64
	// Deliveries counts publications handed to subscribers.
	Deliveries int64
	// SlowConsumers counts connections closed because their outbound buffer was full.
	SlowConsumers int64
	// HeartbeatTimeouts counts connections closed for silence.
	HeartbeatTimeouts int64
	// RecoveredOK and RecoveredFailed count subscribes asking for recovery that
	// got everything they missed, or not.
	RecoveredOK     int64
	RecoveredFailed int64
	// RateLimited counts commands refused by the per-connection rate limit.
	RateLimited int64
	// CommandErrors counts error replies.
	CommandErrors int64
	// AuthFailures counts tokens refused at connect, refresh or the upgrade.
	AuthFailures int64
	// Refused counts connections refused or closed by a limit, by limit:
	// "per_ip", "per_user", "connect_timeout", "token_expired".
	Refused map[string]int64
}

// Transport is one transport's figures in a Snapshot.
type Transport struct {
	// Connections counts the transport's open client connections.
	Connections int
	// BytesIn counts the bytes of the messages clients sent; BytesOut the
	// bytes sent to them. What counts as a message's bytes is the
	// transport's (see docs/metrics.md).
	BytesIn  int64
	BytesOut int64
}

// knownOps are the command ops whose latency is tracked with their own label:
// the ops the protocol has. Any other op is counted as "other".
var knownOps = []string{
	protocol.OpConnect, protocol.OpSubscribe, protocol.OpUnsubscribe, protocol.OpPublish,
	protocol.OpHistory, protocol.OpPing, protocol.OpPong, protocol.OpRefresh,
	protocol.OpPresence, protocol.OpPresenceStats,
}

// Metrics is one node's metrics: a collector reading Snapshots and a command
// latency histogram. Its methods are safe for concurrent use.
type Metrics struct {
	handler http.Handler
	latency map[string]prometheus.Observer
	other   prometheus.Observer
}

// New registers a node's metrics on reg, with Go runtime and process collectors,
// and returns them. snapshot is called once per scrape. When reg is nil a new
// registry is made. Go and process collectors already registered on reg are
// kept as they are.
func New(reg *prometheus.Registry, snapshot func() Snapshot) (*Metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace,
		Name:      "command_duration_seconds",
		Help:      "Time to handle one client command, by op, from decoded to reply queued.",
		Buckets:   []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 5e-2, 0.25, 1},
	}, []string{"op"})
	m := &Metrics{
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		latency: make(map[string]prometheus.Observer, len(knownOps)),
	}
	for _, op := range knownOps {
		m.latency[op] = latency.WithLabelValues(op)
	}
	m.other = latency.WithLabelValues("other")

	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("metrics: register runtime collector: %w", err)
			}
		}
	}
	for _, c := range []prometheus.Collector{latency, newSnapshotCollector(snapshot)} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// ObserveCommand records how long one command with the given op took.
func (m *Metrics) ObserveCommand(op string, d time.Duration) {
	o, ok := m.latency[op]
	if !ok {
		o = m.other
	}
	o.Observe(d.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// snapshotCollector turns one Snapshot per scrape into metrics.
type snapshotCollector struct {
	snapshot func() Snapshot

	connections, channels, subscriptions         *prometheus.Desc
	publications, deliveries, bytesIn, bytesOut  *prometheus.Desc
	slowConsumers, heartbeatTimeouts, recoveries *prometheus.Desc
	rateLimited, commandErrors                   *prometheus.Desc
	authFailures, refused                        *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

func newSnapshotCollector(snapshot func() Snapshot) *snapshotCollector {
	return &snapshotCollector{
		snapshot:          snapshot,
		connections:       desc("connections", "Open client connections, by transport.", "transport"),
		channels:          desc("channels", "Channels with subscribers, history or publications in flight."),
		subscriptions:     desc("subscriptions", "Subscriptions of local clients to channels."),
		publications:      desc("publications_total", "Publications accepted, from clients and the server API."),
		deliveries:        desc("deliveries_total", "Publications handed to local subscribers (one per publication per subscriber)."),
		bytesIn:           desc("received_bytes_total", "Bytes of the messages received from clients, by transport.", "transport"),
		bytesOut:          desc("sent_bytes_total", "Bytes sent to clients, by transport.", "transport"),
		slowConsumers:     desc("slow_consumer_disconnects_total", "Connections closed because their outbound buffer was full."),
		heartbeatTimeouts: desc("heartbeat_timeouts_total", "Connections closed because the peer fell silent."),
		recoveries:        desc("recoveries_total", "Subscribes that asked for recovery, by result (ok: everything missed was delivered).", "result"),
		rateLimited:       desc("rate_limited_commands_total", "Commands refused by the per-connection rate limit."),
		commandErrors:     desc("command_errors_total", "Error replies sent to clients."),
		authFailures:      desc("auth_failures_total", "Tokens refused at connect, refresh or the WebSocket upgrade."),
		refused:           desc("limited_connections_total", "Connections refused or closed by a limit, by limit (per_ip, per_user, connect_timeout, token_expired).", "limit"),
	}
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connections, c.channels, c.subscriptions, c.publications, c.deliveries, c.bytesIn, c.bytesOut,
		c.slowConsumers, c.heartbeatTimeouts, c.recoveries, c.rateLimited, c.commandErrors,
		c.authFailures, c.refused,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, t := range s.Transports {
		gauge(c.connections, t.Connections, name)
		counter(c.bytesIn, t.BytesIn, name)
		counter(c.bytesOut, t.BytesOut, name)
	}
	gauge(c.channels, s.Channels)
	gauge(c.subscriptions, s.Subscriptions)
	counter(c.publications, s.Publications)
	counter(c.deliveries, s.Deliveries)
	counter(c.slowConsumers, s.SlowConsumers)
	counter(c.heartbeatTimeouts, s.HeartbeatTimeouts)
	counter(c.recoveries, s.RecoveredOK, "ok")
	counter(c.recoveries, s.RecoveredFailed, "failed")
	counter(c.rateLimited, s.RateLimited)
	counter(c.commandErrors, s.CommandErrors)
	counter(c.authFailures, s.AuthFailures)
	for limit, v := range s.Refused {
		counter(c.refused, v, limit)
	}
}
