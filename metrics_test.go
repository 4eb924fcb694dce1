package tether_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// scrape returns the node's /metrics, parsed.
func scrape(t *testing.T, url string) map[string][]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string][]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = append(out[key], m.GetCounter().GetValue())
			case m.Gauge != nil:
				out[key] = append(out[key], m.GetGauge().GetValue())
			case m.Histogram != nil:
				out[key+"_count"] = append(out[key+"_count"], float64(m.GetHistogram().GetSampleCount()))
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	a, b := dial(t, n), dial(t, n)
	a.subscribe("news")
	b.subscribe("news")
	b.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "other", Recover: &protocol.Position{Epoch: "gone", Offset: 3}})
	resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/publish"), "", `{"channel":"news","data":{"v":1}}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	a.read()
	b.read()

	got := scrape(t, tethertest.HTTPURL(n, "/metrics"))
	tests := []struct {
		name  string
		min   float64 // the value, or the least it may be when exact is false
		exact bool
	}{
		{"tether_connections{transport=websocket}", 2, true},
		{"tether_channels", 2, true},
		{"tether_subscriptions", 3, true},
		{"tether_publications_total", 1, true},
		{"tether_deliveries_total", 2, true},
		{"tether_recoveries_total{result=failed}", 1, true},
		{"tether_recoveries_total{result=ok}", 0, true},
		{"tether_slow_consumer_disconnects_total", 0, true},
		{"tether_heartbeat_timeouts_total", 0, true},
		{"tether_command_duration_seconds{op=subscribe}_count", 3, true},
		{"tether_received_bytes_total{transport=websocket}", 100, false},
		{"tether_sent_bytes_total{transport=websocket}", 100, false},
		{"process_resident_memory_bytes", 1, false},
		{"process_cpu_seconds_total", 0, false},
		{"go_goroutines", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := got[tt.name]
			if !ok || len(v) != 1 {
				t.Fatalf("%s: %v, want one value", tt.name, v)
			}
			if tt.exact && v[0] != tt.min || v[0] < tt.min {
				t.Fatalf("%s = %v, want %v (exact %v)", tt.name, v[0], tt.min, tt.exact)
			}
		})
	}
}

// TestMetricsEveryTransport: connections and bytes are counted on every
// transport, each under its own label. A client per transport sends one
// command; the bytes received are exactly its message (a line with its
// newline on TCP), the bytes sent at least the reply it read.
func TestMetricsEveryTransport(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	cmd, _ := json.Marshal(protocol.Command{ID: 1, Op: protocol.OpSubscribe, Channel: "m"})
	type want struct {
		in       float64
		replyLen int
	}
	wants := map[string]*want{"websocket": {in: float64(len(cmd))}, "tcp": {in: float64(len(cmd) + 1)}, "grpc": {in: float64(len(cmd))}}
	label := map[string]string{"ws": "websocket", "tcp": "tcp", "grpc": "grpc"} // pconn names to transport labels
	for _, c := range e.dialAll() {
		if c.send(protocol.Command{Op: protocol.OpSubscribe, Channel: "m"}) != 1 {
			t.Fatal("the first command's id is not 1")
		}
		b, err := c.w.readMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		wants[label[c.name]].replyLen = len(b)
	}
	var got map[string][]float64
	waitFor(t, "the bytes sent to be counted", func() bool { // counted once the write returns, maybe after the client read
		got = scrape(t, e.httpURL("/metrics"))
		for name, w := range wants {
			if v := got["tether_sent_bytes_total{transport="+name+"}"]; len(v) != 1 || v[0] < float64(w.replyLen) {
				return false
			}
		}
		return true
	})
	for name, w := range wants {
		if v := got["tether_connections{transport="+name+"}"]; len(v) != 1 || v[0] != 1 {
			t.Errorf("%s connections: %v, want 1", name, v)
		}
		if v := got["tether_received_bytes_total{transport="+name+"}"]; len(v) != 1 || v[0] != w.in {
			t.Errorf("%s bytes received: %v, want %v", name, v, w.in)
		}
	}
}

func TestMetricsOwnRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := tethertest.Config()
	cfg.Registry = reg
	tethertest.NewNode(t, cfg)
	// A second node on the same registry collides on tether's names, not on the
	// runtime collectors.
	free, err := net.Listen("tcp", "127.0.0.1:0") // an address to check that the failed New let go of
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = free.Addr().String()
	free.Close()
	if _, err := tether.New(cfg); err == nil || !strings.Contains(err.Error(), "metrics") {
		t.Fatalf("second node on one registry: err %v, want a metrics registration error", err)
	}
	again, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("the failed New kept its listener: %v", err)
	}
	again.Close()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	for _, want := range []string{"tether_connections", "process_resident_memory_bytes", "go_goroutines"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
	// Nothing lands on the global registry.
	global, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range global {
		if strings.HasPrefix(f.GetName(), "tether_") {
			t.Errorf("global registry has %s", f.GetName())
		}
	}
}

func TestMetricsNeedsAPIKey(t *testing.T) {
	cfg := tethertest.Config()
	cfg.APIKey = "k"
	n := tethertest.NewNode(t, cfg)
	tests := []struct {
		name, key string
		status    int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"wrong key", "x", http.StatusUnauthorized},
		{"key", "k", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tethertest.HTTPURL(n, "/metrics"), nil)
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	c := dial(t, n)
	get := func(path string) int {
		t.Helper()
		client := http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(tethertest.HTTPURL(n, path))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		path   string
		status int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK},
	}
	for _, tt := range tests {
		if got := get(tt.path); got != tt.status {
			t.Errorf("GET %s = %d, want %d", tt.path, got, tt.status)
		}
	}
	// While draining (a client still connected) the node is alive but not
	// ready. The listener closes when draining starts, so ask the handler.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- n.Shutdown(ctx)
	}()
	status := func(path string) int {
		rec := httptest.NewRecorder()
		n.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	deadline := time.Now().Add(5 * time.Second)
	for status("/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readyz still 200 five seconds into Shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("healthz while draining = %d, want 200", got)
	}
	c.c.CloseNow()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
