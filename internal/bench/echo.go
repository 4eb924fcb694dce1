package bench

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EchoOptions configures an echo run.
type EchoOptions struct {
	// Clients is how many connections do round trips at once. Defaults to 50.
	Clients int
	// Duration is how long they do them. Defaults to 10s.
	Duration time.Duration
	// Payload is the size of each message, in bytes. Defaults to 64.
	Payload int
}

// EchoResult is the outcome of an echo run.
type EchoResult struct {
	Bench      string  `json:"bench"`
	Target     string  `json:"target"`
	Clients    int     `json:"clients"`
	Open       int     `json:"open"`
	Payload    int     `json:"payload"`
	Seconds    float64 `json:"seconds"`
	RoundTrips int64   `json:"round_trips"`
	PerSec     float64 `json:"round_trips_per_sec"`
	ServerCPU  float64 `json:"server_cpu_seconds"`
	PerCPUSec  float64 `json:"round_trips_per_cpu_sec"`
	Mismatches int64   `json:"mismatches"`
	Latency    Latency `json:"latency"`
	Limit      string  `json:"limit,omitempty"`
}

// LimitHit implements Result.
func (r *EchoResult) LimitHit() string { return r.Limit }

// Rows implements Result.
func (r *EchoResult) Rows() [][2]string {
	return [][2]string{
		{"clients", fmt.Sprintf("%d asked, %d open, %d-byte messages", r.Clients, r.Open, r.Payload)},
		{"round trips", fmt.Sprintf("%d in %.2f s: %.0f per second (%d wrong echoes)", r.RoundTrips, r.Seconds, r.PerSec, r.Mismatches)},
		{"server CPU", fmt.Sprintf("%.2f s: %.0f round trips per server CPU-second", r.ServerCPU, r.PerCPUSec)},
		latencyRow("round-trip latency", r.Latency),
		limitRow(r.Limit),
	}
}

// Echo runs closed-loop round trips on the echo endpoint: each client sends a
// message and waits for it to come back before sending the next, so latency is
// that of one round trip on a loaded server.
func Echo(ctx context.Context, t Target, o EchoOptions) (*EchoResult, error) {
	if o.Clients <= 0 {
		o.Clients = 50
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Payload <= 0 {
		o.Payload = 64
	}
	f, err := openFleet(ctx, t, o.Clients, 32, "", true)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if f.open == 0 {
		return nil, f.failure()
	}
	hc := publisherClient()
	defer hc.CloseIdleConnections()
	before, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	lat := newHist(16)
	var trips, mismatches atomic.Int64
	var errOnce sync.Once
	var runErr error
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range f.conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := bytes.Repeat([]byte{'e'}, o.Payload)
			payload[0] = byte('a' + i%26)
			for ctx.Err() == nil {
				sent := time.Now()
				if err := c.writeMessage(opText, payload); err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { runErr = err })
					}
					return
				}
				_, got, err := c.readMessage()
				if err != nil {
					if ctx.Err() == nil {
						errOnce.Do(func() { runErr = err })
					}
					return
				}
				lat.record(i, time.Since(sent))
				if !bytes.Equal(got, payload) {
					mismatches.Add(1)
				}
				trips.Add(1)
			}
		}()
	}
	go func() { <-ctx.Done(); f.close() }() // unblock readers at the end
	wg.Wait()
	took := time.Since(start)
	after, err := t.scrape(context.WithoutCancel(ctx), hc)
	if err != nil {
		return nil, err
	}
	r := &EchoResult{
		Bench: "echo", Target: t.Name, Clients: o.Clients, Open: f.open, Payload: o.Payload,
		Seconds: took.Seconds(), RoundTrips: trips.Load(), Mismatches: mismatches.Load(),
		Latency: lat.latency(),
	}
	r.PerSec = float64(r.RoundTrips) / r.Seconds
	if r.ServerCPU = after.CPUSeconds - before.CPUSeconds; r.ServerCPU > 0 {
		r.PerCPUSec = float64(r.RoundTrips) / r.ServerCPU
	}
	if runErr != nil {
		runErr = fmt.Errorf("%w: a client failed: %v", ErrLimit, runErr)
	}
	if err := firstErr(f.failure(), runErr); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}
