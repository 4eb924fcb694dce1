package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrLimit marks a run that hit a limit of the machine, the server or the run
// itself, so that its figures would be wrong: errors.Is(err, ErrLimit).
var ErrLimit = errors.New("bench: hit a limit")

// Target is the server under test.
type Target struct {
	// Name labels the results: "tether", "baseline", ...
	Name string
	// WS is the pub/sub WebSocket endpoint, Echo the echo endpoint.
	WS, Echo string
	// Publish is the HTTP endpoint taking {"channel":...,"data":...} by POST.
	Publish string
	// Batch is the HTTP endpoint taking {"publications":[...]} by POST; ""
	// when the server has none.
	Batch string
	// Metrics is the Prometheus endpoint with process_cpu_seconds_total and
	// process_resident_memory_bytes.
	Metrics string
	// Health is fetched during fan-out runs to see that the server still answers.
	Health string
	// APIKey, when set, is sent as Authorization: Bearer to Publish and Metrics.
	APIKey string
	// MoreMetrics are the Prometheus endpoints of more processes of the
	// system under test (another node of a cluster): their CPU seconds are
	// added to Metrics'.
	MoreMetrics []string
	// Subscribe: clients must subscribe to the channel (tether); false for a
	// server that sends every publication to every client (the baseline).
	Subscribe bool
	// Rooms: the server has rooms rather than channels (the baseline): a
	// connection joins the room its WebSocket URL's room parameter names, and
	// a publish goes to the room the publish URL's room parameter names.
	Rooms bool
	// Compress: clients offer permessage-deflate (without context takeover)
	// and inflate what comes compressed.
	Compress bool
	// Token, when set, returns client i's connection token: each connection
	// sends connect with it before it subscribes, on every (re)connect.
	Token func(i int) string
	// Connect makes each connection send connect (without a token unless
	// Token is set) before it subscribes: the baseline of a token run.
	Connect bool
}

// TargetFor returns the endpoints of a known server kind ("tether" or
// "baseline") at host:port.
func TargetFor(kind, addr string) (Target, error) {
	t := Target{Name: kind, WS: "ws://" + addr + "/ws", Echo: "ws://" + addr + "/ws/echo",
		Metrics: "http://" + addr + "/metrics", Health: "http://" + addr + "/healthz"}
	switch kind {
	case "tether":
		t.Publish = "http://" + addr + "/api/publish"
		t.Batch = "http://" + addr + "/api/batch"
		t.Subscribe = true
	case "baseline":
		t.Publish = "http://" + addr + "/publish"
		t.Rooms = true
	default:
		return Target{}, fmt.Errorf("bench: unknown target %q: want tether or baseline", kind)
	}
	return t, nil
}

func (t Target) wsURL(echo bool) (*url.URL, error) {
	raw := t.WS
	if echo {
		raw = t.Echo
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bench: %q: %w", raw, err)
	}
	return u, nil
}

// procStats are a server's process figures from its /metrics.
type procStats struct {
	CPUSeconds float64 // process_cpu_seconds_total
	RSSBytes   float64 // process_resident_memory_bytes
	Conns      float64 // tether_connections (all transports), -1 when absent
}

// scrape reads the target's process figures, with the CPU seconds of
// MoreMetrics added.
func (t Target) scrape(ctx context.Context, hc *http.Client) (procStats, error) {
	st, err := t.scrapeOne(ctx, hc, t.Metrics)
	for _, m := range t.MoreMetrics {
		if err != nil {
			break
		}
		var more procStats
		if more, err = t.scrapeOne(ctx, hc, m); err == nil {
			st.CPUSeconds += more.CPUSeconds
		}
	}
	return st, err
}

// scrapeOne reads the process figures at one metrics endpoint.
func (t Target) scrapeOne(ctx context.Context, hc *http.Client, metrics string) (procStats, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metrics, nil)
	if err != nil {
		return procStats{}, fmt.Errorf("bench: metrics: %w", err)
	}
	if t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return procStats{}, fmt.Errorf("bench: scrape %s: %w", metrics, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return procStats{}, fmt.Errorf("bench: scrape %s: %s", metrics, resp.Status)
	}
	return parseProcStats(resp.Body)
}

// parseProcStats picks the process figures out of the Prometheus text format.
func parseProcStats(r io.Reader) (procStats, error) {
	st := procStats{CPUSeconds: -1, RSSBytes: -1, Conns: -1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			if j := strings.LastIndexByte(line, '}'); j >= 0 {
				rest = strings.TrimSpace(line[j+1:])
			}
		}
		val, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch name {
		case "process_cpu_seconds_total":
			st.CPUSeconds = v
		case "process_resident_memory_bytes":
			st.RSSBytes = v
		case "tether_connections":
			st.Conns = max(st.Conns, 0) + v
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("bench: read metrics: %w", err)
	}
	if st.CPUSeconds < 0 || st.RSSBytes < 0 {
		return st, errors.New("bench: /metrics has no process_cpu_seconds_total or process_resident_memory_bytes (no process collector?)")
	}
	return st, nil
}
