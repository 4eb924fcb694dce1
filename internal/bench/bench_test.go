package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

// startTether starts a node on a random loopback port and returns its target.
func startTether(t testing.TB, mutate func(*tether.Config)) Target {
	t.Helper()
	cfg := tether.Config{HTTPAddr: tethertest.Loopback}
	if mutate != nil {
		mutate(&cfg)
	}
	n := tethertest.NewNode(t, cfg)
	tg, err := TargetFor("tether", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConns(t *testing.T) {
	tg := startTether(t, nil)
	r, err := Conns(testCtx(t), tg, ConnsOptions{Conns: 30, Concurrency: 4, Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Open != 30 || r.Failures != 0 || r.Limit != "" || r.ServerConns != 30 || r.Connect.Count != 30 {
		t.Fatalf("result %+v: want 30 open, counted by the server, no limit", r)
	}
}

func TestConnsReportsLimit(t *testing.T) {
	tg := startTether(t, func(c *tether.Config) { c.MaxConns = 5 })
	r, err := Conns(testCtx(t), tg, ConnsOptions{Conns: 8, Concurrency: 1, Settle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Open != 5 || r.Failures != 3 || !strings.Contains(r.Limit, "503") {
		t.Fatalf("result %+v: want 5 open, 3 failed on the server's 503", r)
	}
}

func TestFanout(t *testing.T) {
	tests := []struct {
		name string
		opts FanoutOptions
	}{
		{"scheduled", FanoutOptions{Subs: 20, Messages: 10, Rate: 200, Payload: 64}},
		{"full speed", FanoutOptions{Subs: 20, Messages: 50, Rate: 0, Payload: 100}},
	}
	tg := startTether(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Fanout(testCtx(t), tg, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(tt.opts.Subs * tt.opts.Messages)
			if r.Limit != "" || r.Expected != want || r.Delivered != want || r.Lost != 0 ||
				r.Duplicated != 0 || r.OutOfOrder != 0 || r.Latency.Count != want || r.PublishErrors != 0 {
				t.Fatalf("result %+v: want %d deliveries, in order, none lost", r, want)
			}
		})
	}
}

func TestEcho(t *testing.T) {
	tg := startTether(t, nil)
	r, err := Echo(testCtx(t), tg, EchoOptions{Clients: 3, Duration: 200 * time.Millisecond, Payload: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.Open != 3 || r.RoundTrips == 0 || r.Mismatches != 0 || r.Limit != "" {
		t.Fatalf("result %+v: want round trips on 3 clients, all echoed right", r)
	}
}

func TestReconnect(t *testing.T) {
	tg := startTether(t, nil)
	r, err := Reconnect(testCtx(t), tg, ReconnectOptions{Subs: 20, Messages: 30, Rate: 100, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Limit != "" || r.Reopened != 20 || r.RecoveredOK != 20 || r.Lost != 0 || r.Duplicated != 0 || r.Delivered != 600 {
		t.Fatalf("result %+v: want 20 clients back, all recovered, 600 deliveries, none lost or duplicated", r)
	}
}

func TestReconnectNeedsSubscriptions(t *testing.T) {
	if _, err := Reconnect(context.Background(), Target{Name: "baseline"}, ReconnectOptions{}); err == nil {
		t.Fatal("Reconnect against a server without subscriptions: no error")
	}
}

func TestParseProcStats(t *testing.T) {
	tests := []struct {
		name, text string
		want       procStats
		wantErr    bool
	}{
		{"tether", "# HELP x\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 2.097152e+06\n" +
			"tether_connections{transport=\"websocket\"} 7\ntether_connections{transport=\"tcp\"} 3\n",
			procStats{CPUSeconds: 1.5, RSSBytes: 2097152, Conns: 10}, false},
		{"baseline", "process_cpu_seconds_total 0.25\nprocess_resident_memory_bytes 100\n",
			procStats{CPUSeconds: 0.25, RSSBytes: 100, Conns: -1}, false},
		{"no process collector", "go_goroutines 3\n", procStats{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStats(strings.NewReader(tt.text))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSeqTS(t *testing.T) {
	tests := []struct {
		msg     string
		seq, ts int64
		ok      bool
	}{
		{`{"op":"pub","channel":"c","offset":9,"data":{"seq":41,"ts":1700000000123,"pad":"x"}}`, 41, 1700000000123, true},
		{`{"seq":0,"ts":5}`, 0, 5, true},
		{`{"id":1,"result":{}}`, 0, 0, false},
		{`{"seq":,"ts":5}`, 0, 5, false},
	}
	for _, tt := range tests {
		seq, ts, ok := parseSeqTS([]byte(tt.msg))
		if ok != tt.ok || ok && (seq != tt.seq || ts != tt.ts) {
			t.Errorf("parseSeqTS(%s) = %d, %d, %v; want %d, %d, %v", tt.msg, seq, ts, ok, tt.seq, tt.ts, tt.ok)
		}
	}
}

func TestAppendPublishPadsToPayload(t *testing.T) {
	for _, size := range []int{48, 64, 200} {
		b := string(appendPublish(nil, "c", 12, time.Unix(1, 2), size, false))
		data := strings.TrimSuffix(strings.TrimPrefix(b, `{"channel":"c","data":`), "}")
		if len(data) != size {
			t.Errorf("payload %d: data %s is %d bytes", size, data, len(data))
		}
	}
}

// TestAppendPublishJSON: realistic JSON padding is valid JSON of about the
// size asked, carries the sequence and time, and varies with the message.
func TestAppendPublishJSON(t *testing.T) {
	for _, size := range []int{100, 1500} {
		b := appendPublish(nil, "c", 12, time.Unix(1, 2), size, true)
		var req struct{ Data json.RawMessage }
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatalf("payload %d: %v: %s", size, err, b)
		}
		if n := len(req.Data); n < size-10 || n > size+300 {
			t.Errorf("payload %d: data is %d bytes", size, n)
		}
		if seq, ts, ok := parseSeqTS(req.Data); !ok || seq != 12 || ts != 1_000_000_002 {
			t.Errorf("payload %d: seq %d ts %d ok %v", size, seq, ts, ok)
		}
		other := appendPublish(nil, "c", 13, time.Unix(1, 2), size, true)
		if bytes.Equal(b[60:], other[60:]) {
			t.Errorf("payload %d: messages 12 and 13 carry the same items", size)
		}
	}
}

func TestSourceAddrs(t *testing.T) {
	per := ephemeralPorts() * 8 / 10
	tests := []struct {
		name    string
		server  string
		conns   int
		want    int
		wantErr bool
	}{
		{"fits one", "127.0.0.1:80", per, 0, false},
		{"needs two", "127.0.0.1:80", per + 1, 2, false},
		{"not loopback", "10.0.0.1:80", per + 1, 0, true},
		{"too many", "127.0.0.1:80", per * 300, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sourceAddrs(tt.server, tt.conns)
			if (err != nil) != tt.wantErr || len(got) != tt.want {
				t.Fatalf("sourceAddrs = %v, %v; want %d addresses, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrLimit) {
				t.Fatalf("error %v is not ErrLimit", err)
			}
		})
	}
}

// BenchmarkFanoutLoopback publishes b.N messages through the HTTP API to 200
// subscribers over real loopback sockets: the outbound path end to end (shared
// frames, socket writes, coalescing under load). Client and server share the
// process, so only the per-delivery time means something here; the full-size
// figures come from tether bench.
func BenchmarkFanoutLoopback(b *testing.B) {
	tg := startTether(b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.ResetTimer()
	r, err := Fanout(ctx, tg, FanoutOptions{Subs: 200, Messages: b.N, Rate: 0, Drain: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if r.Limit != "" || r.Lost != 0 {
		b.Fatalf("lost %d, limit %q", r.Lost, r.Limit)
	}
	b.ReportMetric(r.Seconds*1e9/float64(r.Delivered), "ns/delivery")
	b.ReportMetric(r.Latency.P99, "p99-ms")
}

func TestChannelsAndChat(t *testing.T) {
	cfg := tether.Config{HTTPAddr: tethertest.Loopback, GRPCAddr: tethertest.Loopback}
	n := tethertest.NewNode(t, cfg)
	tg, err := TargetFor("tether", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		run  func(context.Context) (*FanoutResult, error)
		want int64 // deliveries
	}{
		{"channels", func(ctx context.Context) (*FanoutResult, error) {
			return Channels(ctx, tg, ChannelsOptions{Subs: 20, Messages: 60, Rate: 300, Publishers: 2})
		}, 60},
		{"channels-batch", func(ctx context.Context) (*FanoutResult, error) {
			return Channels(ctx, tg, ChannelsOptions{Subs: 20, Messages: 95, Rate: 1000, Batch: 10})
		}, 95},
		{"channels-grpc", func(ctx context.Context) (*FanoutResult, error) {
			return Channels(ctx, tg, ChannelsOptions{Subs: 20, Messages: 60, Rate: 300, GRPC: n.GRPCAddr().String()})
		}, 60},
		{"chat", func(ctx context.Context) (*FanoutResult, error) {
			return Chat(ctx, tg, ChatOptions{Clients: 12, Room: 4, Messages: 60, Rate: 300})
		}, 60 * 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.run(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if r.Limit != "" || r.Expected != tt.want || r.Delivered != tt.want || r.Lost != 0 ||
				r.Duplicated != 0 || r.Latency.Count != tt.want || r.PublishErrors != 0 || r.Bench != tt.name {
				t.Fatalf("result %+v: want %d deliveries, none lost", r, tt.want)
			}
		})
	}
}
