package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tetherhq/tether/protocol"
)

func TestMetricsServeSnapshotAndLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	calls := 0
	m, err := New(reg, func() Snapshot {
		calls++
		return Snapshot{
			Transports: map[string]Transport{
				"websocket": {Connections: 3, BytesIn: 10, BytesOut: 20},
				"tcp":       {Connections: 1, BytesIn: 30, BytesOut: 40},
			},
			Deliveries:      42,
			RecoveredFailed: 2,
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveCommand("subscribe", time.Millisecond)
	m.ObserveCommand("frobnicate", time.Millisecond)
	m.ObserveCommand("", time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	tests := []string{
		`tether_connections{transport="websocket"} 3`,
		`tether_connections{transport="tcp"} 1`,
		`tether_received_bytes_total{transport="websocket"} 10`,
		`tether_sent_bytes_total{transport="websocket"} 20`,
		`tether_received_bytes_total{transport="tcp"} 30`,
		`tether_sent_bytes_total{transport="tcp"} 40`,
		`tether_deliveries_total 42`,
		`tether_recoveries_total{result="failed"} 2`,
		`tether_recoveries_total{result="ok"} 0`,
		`tether_command_duration_seconds_count{op="subscribe"} 1`,
		`tether_command_duration_seconds_count{op="other"} 2`,
		`process_resident_memory_bytes`,
		`go_goroutines`,
	}
	for _, want := range tests {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if calls != 1 {
		t.Errorf("snapshot called %d times for one scrape, want 1", calls)
	}
}

func TestNewTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	snap := func() Snapshot { return Snapshot{} }
	if _, err := New(reg, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, snap); err == nil {
		t.Fatal("second New on one registry: no error")
	}
	if _, err := New(nil, snap); err != nil {
		t.Fatalf("New with a nil registry: %v", err)
	}
}

// TestOnlyProtocolOpsHaveLabels: /metrics shows a latency series for each op
// of the protocol and none for an op it does not have.
func TestOnlyProtocolOpsHaveLabels(t *testing.T) {
	m, err := New(prometheus.NewRegistry(), func() Snapshot { return Snapshot{} })
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveCommand("teleport", time.Millisecond)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if strings.Contains(body, `op="teleport"`) {
		t.Error(`/metrics has an op="teleport" series: the protocol has no such op`)
	}
	if !strings.Contains(body, `tether_command_duration_seconds_count{op="other"} 1`) {
		t.Error("an unknown op is not counted as other")
	}
	for _, op := range []string{protocol.OpConnect, protocol.OpSubscribe, protocol.OpUnsubscribe, protocol.OpPublish, protocol.OpHistory, protocol.OpPing, protocol.OpPong, protocol.OpPresence, protocol.OpPresenceStats} {
		if !strings.Contains(body, `tether_command_duration_seconds_count{op="`+op+`"} 0`) {
			t.Errorf("/metrics has no series for op %s", op)
		}
	}
}
