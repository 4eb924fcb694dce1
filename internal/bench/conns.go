package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// ConnsOptions configures a conns run.
type ConnsOptions struct {
	// Conns is how many connections to open. Defaults to 10,000.
	Conns int
	// Concurrency is how many connections are being opened at once. Defaults to 64.
	Concurrency int
	// Settle is how long the connections are held before the server's memory is
	// read. Defaults to 3s.
	Settle time.Duration
	// Channel is the channel every connection subscribes to. Defaults to "bench:conns".
	Channel string
}

// ConnsResult is the outcome of a conns run.
type ConnsResult struct {
	Bench          string  `json:"bench"`
	Target         string  `json:"target"`
	Conns          int     `json:"conns"`
	Open           int     `json:"open"`
	Failures       int     `json:"failures"`
	ServerConns    float64 `json:"server_conns"` // as the server counts them; -1: not exported
	RSSBeforeMiB   float64 `json:"rss_before_mib"`
	RSSAfterMiB    float64 `json:"rss_after_mib"`
	RSSPerConnKiB  float64 `json:"rss_per_conn_kib"`
	Connect        Latency `json:"connect"`
	OpenSeconds    float64 `json:"open_seconds"`
	Limit          string  `json:"limit,omitempty"`
	ConnectsPerSec float64 `json:"connects_per_sec"`
	// OpenCPUSeconds is the server CPU spent while the connections opened
	// (handshake, connect with its token, subscribe).
	OpenCPUSeconds float64 `json:"open_cpu_seconds"`
}

// LimitHit implements Result.
func (r *ConnsResult) LimitHit() string { return r.Limit }

// Rows implements Result.
func (r *ConnsResult) Rows() [][2]string {
	sc := "not exported"
	if r.ServerConns >= 0 {
		sc = fmt.Sprintf("%.0f", r.ServerConns)
	}
	return [][2]string{
		{"connections", fmt.Sprintf("%d asked, %d open, %d failed; server counts %s", r.Conns, r.Open, r.Failures, sc)},
		{"opened in", fmt.Sprintf("%.2f s (%.0f per second), server CPU %.2f s", r.OpenSeconds, r.ConnectsPerSec, r.OpenCPUSeconds)},
		latencyRow("connect latency", r.Connect),
		{"server RSS", fmt.Sprintf("%.1f MiB before, %.1f MiB after", r.RSSBeforeMiB, r.RSSAfterMiB)},
		{"RSS per connection", fmt.Sprintf("%.2f KiB", r.RSSPerConnKiB)},
		limitRow(r.Limit),
	}
}

// Conns opens o.Conns subscribed connections, holds them, and reports the
// server's resident memory per connection and the connect latency.
func Conns(ctx context.Context, t Target, o ConnsOptions) (*ConnsResult, error) {
	if o.Conns <= 0 {
		o.Conns = 10_000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Settle <= 0 {
		o.Settle = 3 * time.Second
	}
	if o.Channel == "" {
		o.Channel = "bench:conns"
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	before, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := openFleet(ctx, t, o.Conns, o.Concurrency, o.Channel, false)
	if err != nil {
		return nil, err
	}
	defer f.close()
	opened := time.Since(start)
	afterOpen, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	if err := f.read(func(int, []byte) {}); err != nil {
		return nil, err
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.Settle):
	}
	after, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	r := &ConnsResult{
		Bench: "conns", Target: t.Name, Conns: o.Conns, Open: f.open, Failures: f.failures,
		ServerConns:    after.Conns,
		RSSBeforeMiB:   before.RSSBytes / (1 << 20),
		RSSAfterMiB:    after.RSSBytes / (1 << 20),
		Connect:        f.connectLat.latency(),
		OpenSeconds:    opened.Seconds(),
		ConnectsPerSec: float64(f.open) / opened.Seconds(),
		OpenCPUSeconds: afterOpen.CPUSeconds - before.CPUSeconds,
	}
	if f.open > 0 {
		r.RSSPerConnKiB = (after.RSSBytes - before.RSSBytes) / float64(f.open) / 1024
	}
	if err := firstErr(f.failure(), f.lost(), ctx.Err()); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
