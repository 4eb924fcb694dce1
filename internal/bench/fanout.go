package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FanoutOptions configures a fanout run.
type FanoutOptions struct {
	// Subs is how many subscribers to open. Defaults to 10,000.
	Subs int
	// Messages is how many messages to publish. Defaults to 100.
	Messages int
	// Rate is the messages per second offered; 0 publishes as fast as the
	// publisher can. Defaults to 5 when Messages is also unset.
	Rate float64
	// Payload is the size of each message's data, in bytes (at least 48).
	// Defaults to 64.
	Payload int
	// Concurrency is how many connections are being opened at once. Defaults to 64.
	Concurrency int
	// Drain is how long to wait after the last publish for the deliveries to
	// arrive. Defaults to 10s.
	Drain time.Duration
	// Channel is the channel. Defaults to "bench:fanout".
	Channel string
	// JSON pads each message with realistic JSON (chat messages of varied
	// text) rather than one repeated letter, which compresses unrealistically
	// well.
	JSON bool
}

// FanoutResult is the outcome of a fanout run.
type FanoutResult struct {
	Bench    string  `json:"bench"`
	Target   string  `json:"target"`
	Subs     int     `json:"subs"`
	Open     int     `json:"open"`
	Messages int     `json:"messages"`
	Rate     float64 `json:"rate"` // offered per second; 0: as fast as possible
	Payload  int     `json:"payload"`
	Channels int     `json:"channels,omitempty"` // channels published to (channels, chat)
	Room     int     `json:"room,omitempty"`     // subscribers per channel (channels, chat)
	Batch    int     `json:"batch,omitempty"`    // messages per request (channels)
	JSON     bool    `json:"json,omitempty"`     // realistic JSON padding
	Compress bool    `json:"compress,omitempty"` // subscribers offered permessage-deflate

	Expected   int64 `json:"expected"`
	Delivered  int64 `json:"delivered"`
	Lost       int64 `json:"lost"`
	Duplicated int64 `json:"duplicated"`
	OutOfOrder int64 `json:"out_of_order"`

	Seconds             float64 `json:"seconds"` // first scheduled send to last delivery
	DeliveriesPerSec    float64 `json:"deliveries_per_sec"`
	ServerCPUSeconds    float64 `json:"server_cpu_seconds"`
	DeliveriesPerCPUSec float64 `json:"deliveries_per_cpu_sec"`
	Latency             Latency `json:"latency"` // from each message's scheduled send time

	WireBytes            int64   `json:"wire_bytes"`              // read by the subscribers, frames included
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"` // of WireBytes

	PublishedPerSec float64 `json:"published_per_sec"`
	PublisherLagMs  float64 `json:"publisher_max_lag_ms"` // worst send behind its schedule
	KeptSchedule    bool    `json:"kept_schedule"`
	PublishErrors   int     `json:"publish_errors"`

	HealthMaxMs    float64 `json:"health_max_ms"`
	HealthFailures int     `json:"health_failures"`
	Limit          string  `json:"limit,omitempty"`
}

// LimitHit implements Result.
func (r *FanoutResult) LimitHit() string { return r.Limit }

// Rows implements Result.
func (r *FanoutResult) Rows() [][2]string {
	rate := "as fast as possible"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%g/s", r.Rate)
	}
	kept := "yes"
	if !r.KeptSchedule {
		kept = "NO"
	}
	subs := fmt.Sprintf("%d asked, %d open", r.Subs, r.Open)
	if r.Channels > 0 {
		subs += fmt.Sprintf(", on %d channels of %d", r.Channels, r.Room)
	}
	return [][2]string{
		{"subscribers", subs},
		{"published", fmt.Sprintf("%d messages of %d bytes at %s (%.1f/s achieved, %d errors)", r.Messages, r.Payload, rate, r.PublishedPerSec, r.PublishErrors)},
		{"publisher kept schedule", fmt.Sprintf("%s (worst lag %.1f ms)", kept, r.PublisherLagMs)},
		{"deliveries", fmt.Sprintf("%d of %d; lost %d, duplicated %d, out of order %d", r.Delivered, r.Expected, r.Lost, r.Duplicated, r.OutOfOrder)},
		{"deliveries per second", fmt.Sprintf("%.0f over %.2f s", r.DeliveriesPerSec, r.Seconds)},
		{"server CPU", fmt.Sprintf("%.2f s", r.ServerCPUSeconds)},
		{"deliveries per server CPU-second", fmt.Sprintf("%.0f", r.DeliveriesPerCPUSec)},
		{"bytes on the wire", fmt.Sprintf("%d: %.0f per delivery (compression offered: %v)", r.WireBytes, r.WireBytesPerDelivery, r.Compress)},
		latencyRow("latency from schedule", r.Latency),
		{"/healthz during run", fmt.Sprintf("worst %.1f ms, %d failures", r.HealthMaxMs, r.HealthFailures)},
		limitRow(r.Limit),
	}
}

// subState is one subscriber's view of the stream; only its reader writes it.
type subState struct {
	seen     []uint64 // bitmap of sequence numbers received
	max      int64
	got      atomic.Int64
	dup, ooo int64
	lastNano atomic.Int64
	_        [32]byte
}

// record notes one message received at now by subscriber i.
func (st *subState) record(i int, msg []byte, now time.Time, messages int, lat *histShards) {
	seq, ts, ok := parseSeqTS(msg)
	if !ok {
		return
	}
	st.recordAt(i, seq, ts, now, messages, lat)
}

// recordAt notes message number seq (of messages), sent at ts, received at
// now by subscriber i.
func (st *subState) recordAt(i int, seq, ts int64, now time.Time, messages int, lat *histShards) {
	if seq < 0 || seq >= int64(messages) {
		return
	}
	lat.record(i, now.Sub(time.Unix(0, ts)))
	w, bit := seq/64, uint64(1)<<(seq%64)
	switch {
	case st.seen[w]&bit != 0:
		st.dup++
	case seq < st.max:
		st.ooo++
	}
	st.seen[w] |= bit
	st.max = max(st.max, seq)
	st.lastNano.Store(now.UnixNano())
	st.got.Add(1)
}

// Fanout opens o.Subs subscribers on one channel, publishes o.Messages through
// the HTTP endpoint at o.Rate, and reports throughput, server CPU and latency.
func Fanout(ctx context.Context, t Target, o FanoutOptions) (*FanoutResult, error) {
	if o.Subs <= 0 {
		o.Subs = 10_000
	}
	if o.Messages <= 0 {
		o.Messages = 100
		if o.Rate == 0 {
			o.Rate = 5
		}
	}
	if o.Payload < 48 {
		o.Payload = max(o.Payload, 64)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.Channel == "" {
		o.Channel = "bench:fanout"
	}
	hc := publisherClient()
	defer hc.CloseIdleConnections()

	f, err := openSubscribers(ctx, t, o.Subs, o.Concurrency, o.Channel)
	if err != nil {
		return nil, err
	}
	defer f.close()
	lat := newHist(64)
	states := make([]subState, len(f.conns))
	words := (o.Messages + 64) / 64
	for i := range states {
		states[i].seen = make([]uint64, words)
	}
	err = f.read(func(i int, msg []byte) {
		now := time.Now()
		// One message per frame from tether; the baseline joins queued messages
		// into one frame with newlines (JSON has no raw newlines).
		for len(msg) > 0 {
			one, rest, _ := bytes.Cut(msg, []byte{'\n'})
			msg = rest
			states[i].record(i, one, now, o.Messages, lat)
		}
	})
	if err != nil {
		return nil, err
	}

	before, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	health := startHealthProbe(ctx, t)
	pub := publish(ctx, hc, t, o)
	// Wait for the deliveries, up to Drain after the last publish.
	want := int64(f.open) * int64(pub.sent)
	awaitDeliveries(ctx, states, want, o.Drain)
	after, err := t.scrape(ctx, hc)
	hmax, hfail := health.stop()
	if err != nil {
		return nil, err
	}
	f.close() // stop the readers before reading their state

	r := &FanoutResult{
		Bench: "fanout", Target: t.Name, Subs: o.Subs, Open: f.open, Messages: o.Messages, Rate: o.Rate, Payload: o.Payload,
		JSON: o.JSON, Compress: t.Compress, WireBytes: f.poll.wireBytes(),
		Expected:         int64(f.open) * int64(o.Messages),
		ServerCPUSeconds: after.CPUSeconds - before.CPUSeconds,
		Latency:          lat.latency(),
		PublishedPerSec:  float64(pub.sent) / pub.took.Seconds(),
		PublisherLagMs:   float64(pub.maxLag.Microseconds()) / 1000,
		PublishErrors:    pub.errors,
		HealthMaxMs:      float64(hmax.Microseconds()) / 1000,
		HealthFailures:   hfail,
	}
	// The publisher kept its schedule when no send was later than one interval
	// (at least 5ms) behind it.
	slack := 5 * time.Millisecond
	if o.Rate > 0 {
		slack = max(slack, time.Duration(float64(time.Second)/o.Rate))
	}
	r.KeptSchedule = o.Rate == 0 || pub.maxLag <= slack
	r.tally(f, states, pub.start)
	if err := firstErr(f.failure(), f.lost(), ctx.Err(), pub.err); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}

// awaitDeliveries waits until the subscribers have got want messages in
// all, for at most drain.
func awaitDeliveries(ctx context.Context, states []subState, want int64, drain time.Duration) {
	deadline := time.Now().Add(drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var got int64
		for i := range states {
			got += states[i].got.Load()
		}
		if got >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tally adds up what the open subscribers got, against r.Expected, and
// derives r's rates, start being the first scheduled send. Call it once the
// readers have stopped.
func (r *FanoutResult) tally(f *fleet, states []subState, start time.Time) {
	var last int64
	for i := range states {
		st := &states[i]
		if f.conns[i] == nil {
			continue
		}
		var uniq int
		for _, w := range st.seen {
			uniq += bits.OnesCount64(w)
		}
		r.Delivered += int64(uniq)
		r.Duplicated += st.dup
		r.OutOfOrder += st.ooo
		last = max(last, st.lastNano.Load())
	}
	r.Lost = r.Expected - r.Delivered
	if last > 0 {
		r.Seconds = time.Unix(0, last).Sub(start).Seconds()
		r.DeliveriesPerSec = float64(r.Delivered) / r.Seconds
	}
	if r.ServerCPUSeconds > 0 {
		r.DeliveriesPerCPUSec = float64(r.Delivered) / r.ServerCPUSeconds
	}
	if r.Delivered > 0 {
		r.WireBytesPerDelivery = float64(r.WireBytes) / float64(r.Delivered)
	}
}

// parseSeqTS finds "seq":N and "ts":N in a message without decoding it.
func parseSeqTS(msg []byte) (seq, ts int64, ok bool) {
	seq, ok1 := intAfter(msg, []byte(`"seq":`))
	ts, ok2 := intAfter(msg, []byte(`"ts":`))
	return seq, ts, ok1 && ok2
}

func intAfter(msg, key []byte) (int64, bool) {
	i := bytes.Index(msg, key)
	if i < 0 {
		return 0, false
	}
	var v int64
	n := 0
	for _, c := range msg[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
		n++
	}
	return v, n > 0
}

// pubStats is what the publisher did.
type pubStats struct {
	start  time.Time // the first scheduled send
	took   time.Duration
	sent   int
	errors int
	maxLag time.Duration
	err    error // set when publishing had to stop
}

// publish sends o.Messages messages, each stamped with its scheduled send time.
// A message sent late keeps its scheduled time, so its lateness counts in the
// latency.
func publish(ctx context.Context, hc *http.Client, t Target, o FanoutOptions) pubStats {
	var ps pubStats
	ps.start = time.Now()
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
		ps.start = ps.start.Add(50 * time.Millisecond)
	}
	var body []byte
	for i := range o.Messages {
		sched := ps.start.Add(time.Duration(i) * interval)
		if interval == 0 {
			sched = time.Now()
		} else if d := time.Until(sched); d > 0 {
			select {
			case <-ctx.Done():
				ps.err = ctx.Err()
				return ps
			case <-time.After(d):
			}
		}
		ps.maxLag = max(ps.maxLag, time.Since(sched))
		body = appendPublish(body[:0], o.Channel, i, sched, o.Payload, o.JSON)
		if err := postOnce(ctx, hc, t, body); err != nil {
			ps.errors++
			if ps.errors >= 10 || ctx.Err() != nil {
				ps.err = fmt.Errorf("%w: publishing stopped after %d errors: %v", ErrLimit, ps.errors, err)
				break
			}
			continue
		}
		ps.sent++
	}
	ps.took = time.Since(ps.start)
	return ps
}

// appendPublish appends the publish request of message seq: its data is
// {"seq":N,"ts":unix-nanos,"pad":"xx..."}, padded to payload bytes, or with
// asJSON {"seq":N,"ts":unix-nanos,"items":[...]}, chat messages up to about
// payload bytes.
func appendPublish(dst []byte, channel string, seq int, sched time.Time, payload int, asJSON bool) []byte {
	dst = fmt.Appendf(dst, `{"channel":%q,"data":`, channel)
	start := len(dst)
	if asJSON {
		dst = fmt.Appendf(dst, `{"seq":%d,"ts":%d,"items":[`, seq, sched.UnixNano())
		return append(appendChat(dst, start+payload-4, seq), "]}}"...)
	}
	return append(appendData(dst, seq, sched, payload), '}')
}

// appendData appends the data of message seq: {"seq":N,"ts":unix-nanos,
// "pad":"xx..."}, padded to payload bytes.
func appendData(dst []byte, seq int, sched time.Time, payload int) []byte {
	start := len(dst)
	dst = fmt.Appendf(dst, `{"seq":%d,"ts":%d,"pad":"`, seq, sched.UnixNano())
	for len(dst)-start < payload-2 {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// chatWords are what appendChat's messages say.
var chatWords = strings.Fields(`the a to and of is in it you that for on with this
	was are be have at or not but we they all so can just what about if when
	meeting tomorrow deploy build release ticket review merged thanks great sure
	lunch coffee later today morning update status green red blocked done fixed`)

// appendChat appends comma-separated chat messages, as a room's recent
// history would carry them, until dst reaches about end bytes. The text
// varies with seed, as real messages do.
func appendChat(dst []byte, end, seed int) []byte {
	x := uint32(seed)*2654435761 + 1
	next := func(n int) int { x ^= x << 13; x ^= x >> 17; x ^= x << 5; return int(x % uint32(n)) }
	for i := 0; len(dst) < end; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = fmt.Appendf(dst, `{"id":"m%d-%d","user":{"id":%d,"name":"user%d"},"sent":"2026-11-24T07:%02d:%02dZ","text":"`,
			seed, i, 1000+next(500), next(500), next(60), next(60))
		for w := range 4 + next(12) {
			if w > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, chatWords[next(len(chatWords))]...)
		}
		dst = fmt.Appendf(dst, `","reactions":%d}`, next(5))
	}
	return dst
}

func postOnce(ctx context.Context, hc *http.Client, t Target, body []byte) error {
	return postTo(ctx, hc, t, t.Publish, body)
}

// postTo posts body to u with t's API key.
func postTo(ctx context.Context, hc *http.Client, t Target, u string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if t.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+t.APIKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish: %s", resp.Status)
	}
	return nil
}

// healthProbe fetches the target's health endpoint every 100ms.
type healthProbe struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	worst  time.Duration
	fails  int
}

func startHealthProbe(ctx context.Context, t Target) *healthProbe {
	ctx, cancel := context.WithCancel(ctx)
	p := &healthProbe{cancel: cancel}
	if t.Health == "" {
		return p
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer hc.CloseIdleConnections()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.Health, nil)
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					p.fails++
				}
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				p.fails++
			}
			p.worst = max(p.worst, time.Since(start))
		}
	}()
	return p
}

// stop ends the probe and returns the worst latency and the failures.
func (p *healthProbe) stop() (time.Duration, int) {
	p.cancel()
	p.wg.Wait()
	return p.worst, p.fails
}
