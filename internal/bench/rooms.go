package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ChannelsOptions configures a channels run: many channels of one subscriber
// each, published to through the HTTP API one channel after another.
type ChannelsOptions struct {
	// Subs is how many subscribers, each on its own channel. Defaults to 2,000.
	Subs int
	// Rate is the publishes per second, round-robin over the channels.
	// Defaults to 500.
	Rate float64
	// Messages is how many publishes. Defaults to 20 seconds' worth.
	Messages int
	// Payload is the size of each message's data, in bytes (at least 48).
	// Defaults to 64.
	Payload int
	// Publishers is how many HTTP requests may be in flight at once, each on
	// its own keep-alive connection. Defaults to 1: one at a time.
	Publishers int
	// Batch, above 1, publishes Batch messages per request through tether's
	// POST /api/batch. Each request goes at the scheduled time of its last
	// message, and its messages carry the time the request was sent: latency
	// is from the request to the delivery (how late the sender was is
	// reported as its lag).
	Batch int
	// GRPC, when set, publishes over one ServerAPI/PublishStream stream to
	// this gRPC address (host:port) instead of HTTP, each message at its
	// scheduled time without waiting for the previous answer, carrying the
	// time it was sent, as with Batch.
	GRPC string
	// Concurrency is how many connections are being opened at once. Defaults to 64.
	Concurrency int
	// Drain is how long to wait after the last publish for the deliveries to
	// arrive. Defaults to 10s.
	Drain time.Duration
}

// ChatOptions configures a chat run: rooms of clients where every client
// publishes over its own connection.
type ChatOptions struct {
	// Clients is how many clients. Defaults to 2,000.
	Clients int
	// Room is how many clients share a room (a channel). Defaults to 10.
	Room int
	// Rate is the messages per second, all clients together, round-robin
	// over the clients. Defaults to 2,000.
	Rate float64
	// Messages is how many messages. Defaults to 20 seconds' worth.
	Messages int
	// Payload is the size of each message's data, in bytes (at least 48).
	// Defaults to 64.
	Payload int
	// Concurrency is how many connections are being opened at once. Defaults to 64.
	Concurrency int
	// Drain is how long to wait after the last message for the deliveries to
	// arrive. Defaults to 10s.
	Drain time.Duration
}

// Channels opens o.Subs subscribers, each on a channel of its own, publishes
// o.Messages through the HTTP endpoint at o.Rate round-robin over the
// channels, and reports as Fanout does (Bench "channels").
func Channels(ctx context.Context, t Target, o ChannelsOptions) (*FanoutResult, error) {
	o.Subs = cmp0(o.Subs, 2_000)
	o.Rate = cmp0(o.Rate, 500)
	o.Messages = cmp0(o.Messages, int(o.Rate*20))
	o.Payload = max(cmp0(o.Payload, 64), 48)
	o.Publishers = cmp0(o.Publishers, 1)
	o.Concurrency = cmp0(o.Concurrency, 64)
	o.Drain = cmp0(o.Drain, 10*time.Second)
	channelOf := func(i int) string { return fmt.Sprintf("bench:c%d", i) }
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Publishers + 2}}
	defer hc.CloseIdleConnections()
	run := roomRun{
		bench: "channels", t: t, hc: hc, subs: o.Subs, room: 1, messages: o.Messages, rate: o.Rate, batch: max(o.Batch, 1),
		payload: o.Payload, senders: o.Publishers, concurrency: o.Concurrency, drain: o.Drain, channelOf: channelOf,
	}
	var bodies sync.Pool
	run.send = func(ctx context.Context, _ *fleet, seq, n int, sched time.Time) error {
		bp, _ := bodies.Get().(*[]byte)
		if bp == nil {
			bp = new([]byte)
		}
		defer bodies.Put(bp)
		u := t.Publish
		if n == 1 {
			*bp = appendPublish((*bp)[:0], channelOf(seq%o.Subs), seq, sched, o.Payload, false)
			if t.Rooms {
				u += "?" + url.Values{"room": {channelOf(seq % o.Subs)}}.Encode()
			}
		} else {
			*bp = appendBatch((*bp)[:0], channelOf, o.Subs, seq, n, time.Now(), o.Payload)
			u = t.Batch
		}
		return postTo(ctx, hc, t, u, *bp)
	}
	if o.GRPC != "" {
		if o.Batch > 1 {
			return nil, errors.New("bench: channels: -batch and -grpc are exclusive")
		}
		ps, err := openPublishStream(ctx, t, o.GRPC)
		if err != nil {
			return nil, err
		}
		defer ps.close()
		run.senders = 1 // one stream: sends in order
		run.send = func(_ context.Context, _ *fleet, seq, _ int, _ time.Time) error {
			return ps.send(seq, channelOf(seq%o.Subs), time.Now(), o.Payload)
		}
		run.sendErrors = ps.errors
		run.bench = "channels-grpc"
	} else if o.Batch > 1 {
		if t.Batch == "" {
			return nil, fmt.Errorf("bench: channels: %s has no batch endpoint", t.Name)
		}
		run.bench = "channels-batch"
	}
	run.receivers = func(seq int) (int, int) { return seq % o.Subs, 1 }
	return run.run(ctx)
}

// Chat opens o.Clients clients in rooms of o.Room (room r is channel
// bench:room<r>), has them send o.Messages at o.Rate in total, round-robin
// over the clients, each over its own connection (a publish command to
// tether; the message itself to a server with rooms), and reports as Fanout
// does (Bench "chat"). Every message is due to every client of its room,
// its sender included.
func Chat(ctx context.Context, t Target, o ChatOptions) (*FanoutResult, error) {
	o.Clients = cmp0(o.Clients, 2_000)
	o.Room = min(cmp0(o.Room, 10), o.Clients)
	o.Rate = cmp0(o.Rate, 2_000)
	o.Messages = cmp0(o.Messages, int(o.Rate*20))
	o.Payload = max(cmp0(o.Payload, 64), 48)
	o.Concurrency = cmp0(o.Concurrency, 64)
	o.Drain = cmp0(o.Drain, 10*time.Second)
	hc := publisherClient()
	defer hc.CloseIdleConnections()
	rooms := (o.Clients + o.Room - 1) / o.Room
	channelOf := func(i int) string { return fmt.Sprintf("bench:room%d", i/o.Room) }
	run := roomRun{
		bench: "chat", t: t, hc: hc, subs: o.Clients, room: o.Room, messages: o.Messages, rate: o.Rate, batch: 1,
		payload: o.Payload, senders: 1, concurrency: o.Concurrency, drain: o.Drain, channelOf: channelOf,
	}
	// Message seq is sent by client sender(seq): round-robin over the rooms
	// first, so that consecutive messages go to different rooms.
	sender := func(seq int) int {
		k := seq % o.Clients
		return (k%rooms)*o.Room + (k/rooms)%o.Room
	}
	var pub, body []byte // one sender goroutine
	run.send = func(_ context.Context, f *fleet, seq, _ int, sched time.Time) error {
		i := sender(seq)
		if i >= len(f.conns) || f.conns[i] == nil {
			return errNotOpen
		}
		pub = appendPublish(pub[:0], channelOf(i), seq, sched, o.Payload, false) // {"channel":...,"data":...}
		body = append(fmt.Appendf(body[:0], `{"id":%d,"op":"publish",`, seq+10), pub[1:]...)
		return f.conns[i].writeMessage(opText, body)
	}
	run.receivers = func(seq int) (int, int) {
		first := sender(seq) / o.Room * o.Room
		return first, min(o.Room, o.Clients-first)
	}
	return run.run(ctx)
}

// errNotOpen is a message whose sender's connection did not open.
var errNotOpen = fmt.Errorf("%w: the sender's connection is not open", ErrLimit)

// cmp0 returns v, or def when v is zero.
func cmp0[T int | float64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// roomRun is a run where each message goes to a few subscribers: those of
// one channel (or room).
type roomRun struct {
	bench       string
	t           Target
	hc          *http.Client
	subs, room  int // subscribers; subscribers per channel
	messages    int
	rate        float64
	batch       int // messages per send; at least 1
	payload     int
	senders     int // goroutines sending, message seq by sender seq%senders
	concurrency int
	drain       time.Duration
	channelOf   func(sub int) string
	// send sends messages seq to seq+n-1, scheduled at sched.
	send func(ctx context.Context, f *fleet, seq, n int, sched time.Time) error
	// sendErrors, when set, counts the messages refused after send returned.
	sendErrors func() int
	// receivers returns the subscribers message seq is due to: first, first+1, ... first+n-1.
	receivers func(seq int) (first, n int)
}

func (rr *roomRun) run(ctx context.Context) (*FanoutResult, error) {
	f, err := openFleetOn(ctx, rr.t, rr.subs, rr.concurrency, rr.channelOf, false)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if f.open == 0 {
		return nil, f.failure()
	}
	lat := newHist(64)
	states := make([]subState, len(f.conns))
	// Each subscriber numbers the messages due to it: with one subscriber per
	// channel, message seq is the seq/subs-th of its channel's (the bitmaps
	// stay small); in rooms, every message has its own bit.
	slots, slot := rr.messages, func(seq int64) int64 { return seq }
	if rr.room == 1 {
		slots = rr.messages/rr.subs + 1
		slot = func(seq int64) int64 { return seq / int64(rr.subs) }
	}
	words := (slots + 64) / 64
	for i := range states {
		states[i].seen = make([]uint64, words)
	}
	var replyErrors atomic.Int64
	err = f.read(func(i int, msg []byte) {
		now := time.Now()
		for len(msg) > 0 { // the baseline joins queued messages with newlines
			one, rest, _ := bytes.Cut(msg, []byte{'\n'})
			msg = rest
			if bytes.HasPrefix(one, []byte(`{"id":`)) && bytes.HasPrefix(one[bytes.IndexByte(one, ',')+1:], []byte(`"error":`)) {
				replyErrors.Add(1) // tether refused a publish
				continue
			}
			seq, ts, ok := parseSeqTS(one)
			if ok && seq >= 0 && seq < int64(rr.messages) { // else not a message (a reply): ignored
				states[i].recordAt(i, slot(seq), ts, now, slots, lat)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	before, err := rr.t.scrape(ctx, rr.hc)
	if err != nil {
		return nil, err
	}
	health := startHealthProbe(ctx, rr.t)
	sent, ps := rr.sendAll(ctx, f)
	// What is due: each message sent, to each open subscriber of its channel.
	var want int64
	for seq, ok := range sent {
		if !ok {
			continue
		}
		first, n := rr.receivers(seq)
		for i := first; i < first+n; i++ {
			if f.conns[i] != nil {
				want++
			}
		}
	}
	awaitDeliveries(ctx, states, want, rr.drain)
	after, err := rr.t.scrape(ctx, rr.hc)
	hmax, hfail := health.stop()
	if err != nil {
		return nil, err
	}
	f.close() // stop the readers before reading their state
	if rr.sendErrors != nil {
		ps.errors += rr.sendErrors()
	}

	r := &FanoutResult{
		Bench: rr.bench, Target: rr.t.Name, Subs: rr.subs, Open: f.open, Messages: rr.messages, Rate: rr.rate,
		Payload: rr.payload, Channels: (rr.subs + rr.room - 1) / rr.room, Room: rr.room, WireBytes: f.poll.wireBytes(),
		Expected:         want,
		ServerCPUSeconds: after.CPUSeconds - before.CPUSeconds,
		Latency:          lat.latency(),
		PublishedPerSec:  float64(ps.sent) / ps.took.Seconds(),
		PublisherLagMs:   float64(ps.maxLag.Microseconds()) / 1000,
		PublishErrors:    ps.errors + int(replyErrors.Load()),
		Batch:            rr.batch,
		HealthMaxMs:      float64(hmax.Microseconds()) / 1000,
		HealthFailures:   hfail,
	}
	r.KeptSchedule = ps.maxLag <= max(5*time.Millisecond, time.Duration(float64(time.Second)/rr.rate*float64(rr.senders*rr.batch)))
	r.tally(f, states, ps.start)
	if err := firstErr(f.failure(), f.lost(), ctx.Err(), ps.err); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}

// sendAll sends every message on its schedule from rr.senders goroutines and
// returns which were sent. A message sent late keeps its scheduled time, so
// its lateness counts in the latency.
func (rr *roomRun) sendAll(ctx context.Context, f *fleet) ([]bool, pubStats) {
	sent := make([]bool, rr.messages)
	interval := time.Duration(float64(time.Second) / rr.rate)
	ps := pubStats{start: time.Now().Add(50 * time.Millisecond)}
	var mu sync.Mutex // guards ps
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	batches := (rr.messages + rr.batch - 1) / rr.batch
	for w := range rr.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timer := time.NewTimer(0)
			defer timer.Stop()
			for k := w; k < batches; k += rr.senders {
				seq := k * rr.batch
				n := min(rr.batch, rr.messages-seq)
				sched := ps.start.Add(time.Duration(seq+n-1) * interval)
				if d := time.Until(sched); d > 0 {
					timer.Reset(d)
					select {
					case <-ctx.Done():
						return
					case <-timer.C:
					}
				}
				lag := time.Since(sched)
				err := rr.send(ctx, f, seq, n, sched)
				mu.Lock()
				ps.maxLag = max(ps.maxLag, lag)
				if err == nil {
					ps.sent += n
					for i := seq; i < seq+n; i++ {
						sent[i] = true
					}
				} else {
					ps.errors++
					if ps.errors >= 10 || ctx.Err() != nil {
						if ps.err == nil {
							ps.err = fmt.Errorf("%w: sending stopped after %d errors: %v", ErrLimit, ps.errors, err)
						}
						cancel()
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ps.err == nil && ctx.Err() != nil {
		ps.err = ctx.Err()
	}
	ps.took = time.Since(ps.start)
	return sent, ps
}

// appendBatch appends the /api/batch request of messages seq to seq+n-1, to
// channels round-robin, all stamped with sched.
func appendBatch(dst []byte, channelOf func(int) string, subs, seq, n int, sched time.Time, payload int) []byte {
	dst = append(dst, `{"publications":[`...)
	for i := seq; i < seq+n; i++ {
		if i > seq {
			dst = append(dst, ',')
		}
		dst = appendPublish(dst, channelOf(i%subs), i, sched, payload, false)
	}
	return append(dst, "]}"...)
}
