package tether

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/protocol"
)

// Stats is what GET /api/stats answers: a node's figures for the live stats
// page (/stats). Counters count from the node's start; rates are per second
// over the span between the last two samples. A node samples at most once per
// StatsInterval, however many clients ask: asking more often returns the same
// sample.
type Stats struct {
	// Time is when the sample was taken, in Unix milliseconds.
	Time int64 `json:"time"`
	// IntervalSeconds is the span the rates are measured over; 0 in a node's
	// first sample, which has no rates.
	IntervalSeconds float64          `json:"interval_seconds"`
	Connections     StatsByTransport `json:"connections"`
	Channels        int              `json:"channels"`
	Subscriptions   int              `json:"subscriptions"`
	// Publications counts publications accepted; Deliveries counts
	// publications handed to local subscribers (one per subscriber).
	Publications          int64   `json:"publications"`
	Deliveries            int64   `json:"deliveries"`
	PublicationsPerSecond float64 `json:"publications_per_second"`
	DeliveriesPerSecond   float64 `json:"deliveries_per_second"`
	// SlowConsumers and HeartbeatTimeouts count connections closed for a full
	// outbound buffer and for silence.
	SlowConsumers     int64 `json:"slow_consumers"`
	HeartbeatTimeouts int64 `json:"heartbeat_timeouts"`
	// Recoveries counts subscribes that asked for recovery, by outcome.
	Recoveries     StatsRecoveries `json:"recoveries"`
	RateLimited    int64           `json:"rate_limited"`
	CommandErrors  int64           `json:"command_errors"`
	SessionsOpened int64           `json:"sessions_opened"`
	// Channels and Subscriptions count the channels with local subscribers.
	// Busiest lists up to StatsBusiest of them, by publications per second,
	// then by subscribers.
	Busiest []ChannelRate `json:"busiest_channels"`
	// Nodes lists the nodes of the cluster; a node alone lists itself.
	Nodes []NodeStats `json:"nodes"`
}

// StatsByTransport counts open client connections.
type StatsByTransport struct {
	Total     int `json:"total"`
	WebSocket int `json:"websocket"`
	TCP       int `json:"tcp"`
	GRPC      int `json:"grpc"`
}

// StatsRecoveries counts subscribes with recovery: OK got everything they
// missed, Failed could not (recovered:false).
type StatsRecoveries struct {
	OK     int64 `json:"ok"`
	Failed int64 `json:"failed"`
}

// ChannelRate is one channel in Stats.Busiest.
type ChannelRate struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
	// Offset is the channel's last offset in its current epoch.
	Offset                uint64  `json:"offset"`
	PublicationsPerSecond float64 `json:"publications_per_second"`
	// DeliveriesPerSecond is PublicationsPerSecond times Subscribers.
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
}

// NodeStats is one node in Stats.Nodes.
type NodeStats struct {
	Name            string `json:"name"`
	Address         string `json:"address"`
	Self            bool   `json:"self"`
	Connections     int    `json:"connections"`
	UptimeSeconds   int64  `json:"uptime_seconds"`
	ProtocolVersion int    `json:"protocol_version"`
}

// StatsInterval is the shortest span between two samples of /api/stats.
const StatsInterval = 900 * time.Millisecond

// StatsBusiest is how many channels Stats.Busiest lists at most.
const StatsBusiest = 10

// statsSampler takes samples for /api/stats, at most one per StatsInterval.
type statsSampler struct {
	n    *Node
	name string

	mu   sync.Mutex
	last *statsSample
}

type statsSample struct {
	at      time.Time
	stats   Stats
	offsets map[string]protocol.Position
}

// statsHandler serves GET /api/stats. Its route puts it behind the server
// API's access check.
func (n *Node) statsHandler() http.Handler {
	host, _ := os.Hostname()
	s := &statsSampler{n: n, name: host}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.Marshal(s.sample(time.Now()))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
}

// sample returns the last sample, or a new one when it is StatsInterval old.
func (s *statsSampler) sample(now time.Time) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && now.Sub(s.last.at) < StatsInterval {
		return s.last.stats
	}
	s.last = s.take(now, s.last)
	return s.last.stats
}

// take gathers a sample; rates are measured against prev, when there is one.
func (s *statsSampler) take(now time.Time, prev *statsSample) *statsSample {
	n := s.n
	tcp, grpcStreams := n.transportConns()
	ws := n.ws.Len()
	ss := n.sessions.Stats()
	cur := &statsSample{at: now, offsets: make(map[string]protocol.Position)}
	st := &cur.stats
	st.Time = now.UnixMilli()
	st.Connections = StatsByTransport{Total: ws + tcp + grpcStreams, WebSocket: ws, TCP: tcp, GRPC: grpcStreams}
	st.Publications = ss.Publications.Load()
	st.Deliveries = n.hub.Deliveries()
	st.SlowConsumers = ss.SlowConsumers.Load()
	st.HeartbeatTimeouts = ss.HeartbeatTimeouts.Load()
	st.Recoveries = StatsRecoveries{OK: ss.RecoveredOK.Load(), Failed: ss.RecoveredFailed.Load()}
	st.RateLimited = ss.RateLimited.Load()
	st.CommandErrors = ss.CommandErrors.Load()
	st.SessionsOpened = ss.Opened.Load()
	var secs float64
	if prev != nil {
		secs = now.Sub(prev.at).Seconds()
		st.IntervalSeconds = secs
		st.PublicationsPerSecond = float64(st.Publications-prev.stats.Publications) / secs
		st.DeliveriesPerSecond = float64(st.Deliveries-prev.stats.Deliveries) / secs
	}
	busiest := make([]ChannelRate, 0, StatsBusiest+1)
	n.hub.EachChannel(func(c hub.ChannelStats) {
		st.Channels++
		st.Subscriptions += c.Subscribers
		cur.offsets[c.Name] = protocol.Position{Epoch: c.Epoch, Offset: c.Offset}
		cr := ChannelRate{Channel: c.Name, Subscribers: c.Subscribers, Offset: c.Offset}
		// A channel new since prev, or in another epoch, has no rate yet:
		// its offset says nothing of when its publications were made.
		if p, ok := prev.offsetOf(c.Name); ok && p.Epoch == c.Epoch && c.Offset >= p.Offset {
			cr.PublicationsPerSecond = float64(c.Offset-p.Offset) / secs
			cr.DeliveriesPerSecond = cr.PublicationsPerSecond * float64(c.Subscribers)
		}
		if cr.PublicationsPerSecond == 0 && cr.Subscribers == 0 {
			return
		}
		i, _ := slices.BinarySearchFunc(busiest, cr, busier)
		if i < StatsBusiest {
			busiest = slices.Insert(busiest, i, cr)
			busiest = busiest[:min(len(busiest), StatsBusiest)]
		}
	})
	st.Busiest = busiest
	addr := ""
	if a := n.Addr(); a != nil {
		addr = a.String()
	}
	st.Nodes = []NodeStats{{
		Name: s.name, Address: addr, Self: true, Connections: st.Connections.Total,
		UptimeSeconds: int64(now.Sub(n.started).Seconds()), ProtocolVersion: protocol.Version,
	}}
	for _, other := range n.clusterNodes() {
		if other.Name != n.cfg.NATS.Name {
			st.Nodes = append(st.Nodes, NodeStats{Name: other.Name, Connections: int(other.Connections)})
		}
	}
	return cur
}

// offsetOf returns the position channel had in s, if s has it.
func (s *statsSample) offsetOf(channel string) (protocol.Position, bool) {
	if s == nil {
		return protocol.Position{}, false
	}
	p, ok := s.offsets[channel]
	return p, ok
}

// busier orders channels busiest first: by publication rate, then
// subscribers, then name.
func busier(a, b ChannelRate) int {
	switch {
	case a.PublicationsPerSecond != b.PublicationsPerSecond:
		if a.PublicationsPerSecond > b.PublicationsPerSecond {
			return -1
		}
		return 1
	case a.Subscribers != b.Subscribers:
		return b.Subscribers - a.Subscribers
	case a.Channel < b.Channel:
		return -1
	case a.Channel > b.Channel:
		return 1
	}
	return 0
}
