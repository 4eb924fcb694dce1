package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/bits"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ReconnectOptions configures a reconnect run.
type ReconnectOptions struct {
	// Subs is how many subscribers to open. Defaults to 10,000.
	Subs int
	// Messages is how many messages to publish, at Rate per second. Defaults to
	// 60 at 5 per second.
	Messages int
	Rate     float64
	// DropAfter is when, after publishing starts, every connection is dropped at
	// once. Defaults to a third of the publishing time.
	DropAfter time.Duration
	// Concurrency is how many connections are being opened at once. Defaults to 64.
	Concurrency int
	// Drain is how long to wait after the last publish for the deliveries.
	// Defaults to 10s.
	Drain time.Duration
	// Channel is the channel. Defaults to "bench:reconnect".
	Channel string
}

// ReconnectResult is the outcome of a reconnect run.
type ReconnectResult struct {
	Bench           string  `json:"bench"`
	Target          string  `json:"target"`
	Subs            int     `json:"subs"`
	Open            int     `json:"open"`
	Reopened        int     `json:"reopened"`
	Messages        int     `json:"messages"`
	Rate            float64 `json:"rate"`
	AllBackSeconds  float64 `json:"all_back_seconds"` // from the drop to the last recovered subscribe reply
	Resubscribe     Latency `json:"resubscribe"`      // per client, from the drop to its subscribe reply
	RecoveredOK     int     `json:"recovered_ok"`
	RecoveredFailed int     `json:"recovered_failed"`
	Expected        int64   `json:"expected"`
	Delivered       int64   `json:"delivered"`
	Lost            int64   `json:"lost"`
	Duplicated      int64   `json:"duplicated"`
	PublishErrors   int     `json:"publish_errors"`
	Limit           string  `json:"limit,omitempty"`
}

// LimitHit implements Result.
func (r *ReconnectResult) LimitHit() string { return r.Limit }

// Rows implements Result.
func (r *ReconnectResult) Rows() [][2]string {
	return [][2]string{
		{"subscribers", fmt.Sprintf("%d asked, %d open, %d back after the drop", r.Subs, r.Open, r.Reopened)},
		{"published", fmt.Sprintf("%d messages at %g/s (%d errors), every connection dropped mid-way", r.Messages, r.Rate, r.PublishErrors)},
		{"all back (resubscribed) in", fmt.Sprintf("%.2f s after the drop", r.AllBackSeconds)},
		latencyRow("resubscribe time", r.Resubscribe),
		{"recovery", fmt.Sprintf("%d recovered, %d could not", r.RecoveredOK, r.RecoveredFailed)},
		{"deliveries", fmt.Sprintf("%d of %d; lost %d, duplicated %d", r.Delivered, r.Expected, r.Lost, r.Duplicated)},
		limitRow(r.Limit),
	}
}

// subscribeReply is the part of a subscribe reply a reconnecting client reads.
type subscribeReply struct {
	Result struct {
		Epoch        string `json:"epoch"`
		Offset       uint64 `json:"offset"`
		Recovered    bool   `json:"recovered"`
		Publications []struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		} `json:"publications"`
	} `json:"result"`
}

// Reconnect opens o.Subs subscribers, publishes o.Messages at o.Rate, drops
// every connection at once after o.DropAfter, and resubscribes each client
// asking to recover from the last offset it saw. It reports how long until
// every client was back with recovery, and what was lost or duplicated over the
// whole run. It needs a server with recovery (tether).
func Reconnect(ctx context.Context, t Target, o ReconnectOptions) (*ReconnectResult, error) {
	if !t.Subscribe {
		return nil, fmt.Errorf("bench: reconnect needs a server with subscriptions and recovery; %s has none", t.Name)
	}
	if o.Subs <= 0 {
		o.Subs = 10_000
	}
	if o.Messages <= 0 {
		o.Messages = 60
	}
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.DropAfter <= 0 {
		o.DropAfter = time.Duration(float64(o.Messages) / o.Rate / 3 * float64(time.Second))
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	if o.Channel == "" {
		o.Channel = "bench:reconnect"
	}
	hc := publisherClient()
	defer hc.CloseIdleConnections()

	f, err := openSubscribers(ctx, t, o.Subs, o.Concurrency, o.Channel)
	if err != nil {
		return nil, err
	}
	defer f.close()
	var epoch string
	for _, c := range f.conns {
		if c != nil {
			var rep subscribeReply
			if err := json.Unmarshal(c.reply, &rep); err != nil {
				return nil, fmt.Errorf("bench: subscribe reply %s: %w", c.reply, err)
			}
			epoch = rep.Result.Epoch
			break
		}
	}
	lat := newHist(64)
	states := make([]subState, len(f.conns))
	offsets := make([]uint64, len(f.conns)) // last offset each client saw; written by its reader only
	for i := range states {
		states[i].seen = make([]uint64, (o.Messages+64)/64)
	}
	handle := func(i int, msg []byte) {
		if off, ok := intAfter(msg, []byte(`"offset":`)); ok {
			offsets[i] = max(offsets[i], uint64(off))
		}
		states[i].record(i, msg, time.Now(), o.Messages, lat)
	}
	if err := f.read(handle); err != nil {
		return nil, err
	}

	pubDone := make(chan pubStats, 1)
	go func() {
		pubDone <- publish(ctx, hc, t, FanoutOptions{Messages: o.Messages, Rate: o.Rate, Payload: 64, Channel: o.Channel})
	}()
	select {
	case <-ctx.Done():
	case <-time.After(o.DropAfter):
	}
	dropped := time.Now()
	f.close() // every connection at once; the pollers have stopped when it returns

	p2, err := newPollReader(2, handle)
	if err != nil {
		return nil, err
	}
	defer p2.stop()
	u, err := t.wsURL(false)
	if err != nil {
		return nil, err
	}
	srcs, err := sourceAddrs(u.Host, len(f.conns))
	if err != nil {
		return nil, err
	}
	back := newHist(64)
	var mu sync.Mutex
	var reopened, okN, failedN, failures int
	var lastBack time.Time
	var reopenErr1 error
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(f.conns) || ctx.Err() != nil {
					return
				}
				if f.conns[i] == nil {
					continue
				}
				d := &net.Dialer{Timeout: 10 * time.Second}
				if len(srcs) > 0 {
					d.LocalAddr = srcs[i%len(srcs)]
				}
				sub := fmt.Appendf(nil, `{"id":1,"op":"subscribe","channel":%q,"recover":{"epoch":%q,"offset":%d}}`, o.Channel, epoch, offsets[i])
				c, err := connectOne(ctx, d, u, t, connectCmd(t, i), sub) // t.Subscribe: checked by Reconnect
				var rep subscribeReply
				if err == nil {
					err = json.Unmarshal(c.reply, &rep)
				}
				if err != nil {
					mu.Lock()
					failures++
					if reopenErr1 == nil {
						reopenErr1 = err
					}
					mu.Unlock()
					continue
				}
				now := time.Now()
				back.record(w, now.Sub(dropped))
				for _, p := range rep.Result.Publications {
					offsets[i] = max(offsets[i], p.Offset)
					states[i].record(i, p.Data, now, o.Messages, lat)
				}
				if err := p2.add(i, c); err != nil {
					p2.fail(err)
				}
				mu.Lock()
				reopened++
				if rep.Result.Recovered {
					okN++
				} else {
					failedN++
				}
				lastBack = now
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	pub := <-pubDone
	want := int64(reopened) * int64(pub.sent)
	awaitDeliveries(ctx, states, want, o.Drain)
	p2.stop()

	r := &ReconnectResult{
		Bench: "reconnect", Target: t.Name, Subs: o.Subs, Open: f.open, Reopened: reopened,
		Messages: o.Messages, Rate: o.Rate, Resubscribe: back.latency(),
		RecoveredOK: okN, RecoveredFailed: failedN, PublishErrors: pub.errors,
		Expected: int64(reopened) * int64(o.Messages),
	}
	if !lastBack.IsZero() {
		r.AllBackSeconds = lastBack.Sub(dropped).Seconds()
	}
	for i := range states {
		if f.conns[i] == nil {
			continue
		}
		for _, w := range states[i].seen {
			r.Delivered += int64(bits.OnesCount64(w))
		}
		r.Duplicated += states[i].dup
	}
	r.Lost = r.Expected - r.Delivered
	var reopenErr error
	if failures > 0 {
		reopenErr = fmt.Errorf("%w: %d clients could not reconnect; first error: %v", ErrLimit, failures, reopenErr1)
	}
	if err := firstErr(f.failure(), reopenErr, p2.lost(), ctx.Err(), pub.err); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}
