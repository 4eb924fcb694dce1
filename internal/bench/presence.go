package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// PresenceOptions configures a presence run. The server must keep presence
// in Channel's namespace with join_leave and occupancy on (bench/presence.yaml).
type PresenceOptions struct {
	// Members is how many connections hold the channel. Defaults to 15,000.
	Members int
	// Churners are the extra connections that join and leave the channel
	// in turns. Defaults to 100.
	Churners int
	// Rate is the joins and leaves per second, together. Defaults to 500.
	Rate float64
	// Duration is how long the churn lasts. Defaults to 20s.
	Duration time.Duration
	// Concurrency is how many connections are being opened at once.
	// Defaults to 64.
	Concurrency int
	// Channel is the channel. Defaults to "bench:presence".
	Channel string
	// NoQueries sends no presence or presence_stats: for a baseline run on
	// a channel without presence (benchoff:presence in bench/presence.yaml),
	// whose CPU the presence run's is compared with.
	NoQueries bool
}

// PresenceResult is the outcome of a presence run.
type PresenceResult struct {
	Bench    string  `json:"bench"`
	Target   string  `json:"target"`
	Members  int     `json:"members"`
	Open     int     `json:"open"`
	Churn    int     `json:"churn"` // joins and leaves sent
	ChurnPS  float64 `json:"churn_per_sec"`
	Duration float64 `json:"duration_seconds"`
	// PushesPerSubPS is the mean presence pushes per second a member got
	// during the churn; MaxPushesPerSecond the most any member got in one
	// second of the churn (counted from its start); MinGapMs the shortest
	// time between two pushes to one member, as it read them.
	PushesPerSubPS     float64 `json:"pushes_per_sub_per_sec"`
	MaxPushesPerSecond int     `json:"max_pushes_per_second"`
	MinGapMs           float64 `json:"min_gap_ms"`
	// ChurnCPUCores is the server's CPU during the churn, in cores; IdleCPUCores
	// the same members without churn, for as long.
	ChurnCPUCores float64 `json:"churn_cpu_cores"`
	IdleCPUCores  float64 `json:"idle_cpu_cores"`
	// RSSPerMemberKiB is the server's resident memory per member (the
	// connection included).
	RSSPerMemberKiB float64 `json:"rss_per_member_kib"`
	// Presence and PresenceStats are the latencies the bench measured, from
	// the command sent to its reply read; ServerPresenceWithin50ms and
	// ServerStatsWithin1ms the share of the commands the server handled
	// (decoded to reply queued, its command_duration histogram) within 50
	// ms and 1 ms.
	Presence                 Latency `json:"presence"`
	PresenceStats            Latency `json:"presence_stats"`
	ServerPresenceWithin50ms float64 `json:"server_presence_within_50ms"`
	ServerStatsWithin1ms     float64 `json:"server_stats_within_1ms"`
	Limit                    string  `json:"limit,omitempty"`
}

// LimitHit implements Result.
func (r *PresenceResult) LimitHit() string { return r.Limit }

// Rows implements Result.
func (r *PresenceResult) Rows() [][2]string {
	return [][2]string{
		{"members", fmt.Sprintf("%d asked, %d open; %.2f KiB RSS each (connection included)", r.Members, r.Open, r.RSSPerMemberKiB)},
		{"churn", fmt.Sprintf("%d joins and leaves in %.1f s (%.0f per second)", r.Churn, r.Duration, r.ChurnPS)},
		{"pushes per member", fmt.Sprintf("%.2f per second on average, at most %d in one second, at least %.0f ms apart", r.PushesPerSubPS, r.MaxPushesPerSecond, r.MinGapMs)},
		{"server CPU", fmt.Sprintf("%.3f cores while churning, %.3f cores idle", r.ChurnCPUCores, r.IdleCPUCores)},
		latencyRow("presence", r.Presence),
		latencyRow("presence_stats", r.PresenceStats),
		{"server-side", fmt.Sprintf("%.2f%% of presence handled within 50 ms, %.2f%% of presence_stats within 1 ms",
			100*r.ServerPresenceWithin50ms, 100*r.ServerStatsWithin1ms)},
		limitRow(r.Limit),
	}
}

// Presence holds o.Members connections on one channel, lets o.Churners more
// join and leave it at o.Rate per second, and reports the presence pushes
// each member got, the server's CPU, and the latency of presence and
// presence_stats on the channel meanwhile.
func Presence(ctx context.Context, t Target, o PresenceOptions) (*PresenceResult, error) {
	if o.Members <= 0 {
		o.Members = 15_000
	}
	if o.Churners <= 0 {
		o.Churners = 100
	}
	if o.Rate <= 0 {
		o.Rate = 500
	}
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Channel == "" {
		o.Channel = "bench:presence"
	}
	if !t.Subscribe {
		return nil, errors.New("bench: presence needs a tether target")
	}
	hc := publisherClient()
	before, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	members, err := openSubscribers(ctx, t, o.Members, o.Concurrency, o.Channel)
	if err != nil {
		return nil, err
	}
	defer members.close()
	bare := t
	bare.Subscribe = false
	churners, err := openFleet(ctx, bare, o.Churners+2, o.Concurrency, "", false)
	if err != nil {
		return nil, err
	}
	defer churners.close()
	if !churners.complete() {
		return nil, churners.failure()
	}

	var mu sync.Mutex
	counting := false
	pushes := make([][]time.Time, len(members.conns))
	mark := []byte(`"op":"presence"`)
	if err := members.read(func(i int, msg []byte) {
		if !bytes.Contains(msg, mark) {
			return
		}
		mu.Lock()
		on := counting
		mu.Unlock()
		if on {
			pushes[i] = append(pushes[i], time.Now())
		}
	}); err != nil {
		return nil, err
	}
	// The members' own joins settle, then the same time without churn.
	idle := min(o.Duration, 5*time.Second)
	sleep(ctx, 2*time.Second)
	idleStart, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	sleep(ctx, idle)
	idleEnd, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}

	// The last two bare connections ask presence and presence_stats; the
	// others churn.
	askers := churners.conns[o.Churners:]
	churn := churners.conns[:o.Churners]
	for _, c := range churn {
		go drain(c)
	}
	presBefore, err1 := t.scrapeOpHist(ctx, hc, "presence")
	statsBefore, err2 := t.scrapeOpHist(ctx, hc, "presence_stats")
	if err := firstErr(err1, err2); err != nil {
		return nil, err
	}
	mu.Lock()
	counting = true
	mu.Unlock()
	start := time.Now()
	runCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	presLat, statsLat := newHist(1), newHist(1)
	var askErr error
	var askMu sync.Mutex
	for i, op := range []string{"presence", "presence_stats"} {
		if o.NoQueries {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			every, h := 200*time.Millisecond, presLat
			if op == "presence_stats" {
				every, h = 10*time.Millisecond, statsLat
			}
			if err := ask(runCtx, askers[i], op, o.Channel, every, h); err != nil {
				askMu.Lock()
				askErr = err
				askMu.Unlock()
			}
		}()
	}
	sent := churnLoop(runCtx, churn, o.Channel, o.Rate)
	wg.Wait()
	elapsed := time.Since(start)
	mu.Lock()
	counting = false
	mu.Unlock()
	after, err := t.scrape(ctx, hc)
	if err != nil {
		return nil, err
	}
	presAfter, err1 := t.scrapeOpHist(ctx, hc, "presence")
	statsAfter, err2 := t.scrapeOpHist(ctx, hc, "presence_stats")
	if err := firstErr(err1, err2); err != nil {
		return nil, err
	}

	r := &PresenceResult{
		Bench: "presence", Target: t.Name, Members: o.Members, Open: members.open,
		Churn: sent, ChurnPS: float64(sent) / elapsed.Seconds(), Duration: elapsed.Seconds(),
		ChurnCPUCores: (after.CPUSeconds - idleEnd.CPUSeconds) / elapsed.Seconds(),
		IdleCPUCores:  (idleEnd.CPUSeconds - idleStart.CPUSeconds) / idle.Seconds(),
		Presence:      presLat.latency(), PresenceStats: statsLat.latency(),
	}
	r.ServerPresenceWithin50ms, _ = presAfter.within(presBefore, 0.05)
	r.ServerStatsWithin1ms, _ = statsAfter.within(statsBefore, 0.001)
	if members.open > 0 {
		r.RSSPerMemberKiB = (idleEnd.RSSBytes - before.RSSBytes) / float64(members.open) / 1024
	}
	mu.Lock()
	total, minGap := 0, time.Duration(-1)
	for _, ts := range pushes {
		total += len(ts)
		perSecond := map[int64]int{}
		for j, at := range ts {
			s := int64(at.Sub(start) / time.Second)
			perSecond[s]++
			r.MaxPushesPerSecond = max(r.MaxPushesPerSecond, perSecond[s])
			if j > 0 && (minGap < 0 || at.Sub(ts[j-1]) < minGap) {
				minGap = at.Sub(ts[j-1])
			}
		}
	}
	mu.Unlock()
	r.MinGapMs = float64(minGap) / float64(time.Millisecond)
	if members.open > 0 {
		r.PushesPerSubPS = float64(total) / float64(members.open) / elapsed.Seconds()
	}
	if err := firstErr(members.failure(), members.lost(), askErr, ctx.Err()); err != nil {
		r.Limit = err.Error()
	}
	return r, nil
}

// churnLoop subscribes and unsubscribes conns to channel in turns, rate
// commands per second in all, until ctx ends; it returns how many it sent.
func churnLoop(ctx context.Context, conns []*wsConn, channel string, rate float64) int {
	const tick = 10 * time.Millisecond
	per := rate * tick.Seconds()
	in := make([]bool, len(conns))
	sub := []byte(`{"op":"subscribe","channel":"` + channel + `"}`)
	unsub := []byte(`{"op":"unsubscribe","channel":"` + channel + `"}`)
	tk := time.NewTicker(tick)
	defer tk.Stop()
	sent, next := 0, 0
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-tk.C:
		}
		for owed += per; owed >= 1; owed-- {
			c := conns[next]
			cmd := sub
			if in[next] {
				cmd = unsub
			}
			if c.writeMessage(opText, cmd) == nil {
				in[next] = !in[next]
				sent++
			}
			next = (next + 1) % len(conns)
		}
	}
}

// ask sends op on channel through c every interval until ctx ends and
// records each reply's latency in h.
func ask(ctx context.Context, c *wsConn, op, channel string, every time.Duration, h *histShards) error {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for id := 1; ; id++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
		prefix := []byte(`{"id":` + strconv.Itoa(id) + `,`)
		start := time.Now()
		_ = c.nc.SetDeadline(start.Add(10 * time.Second))
		if err := c.writeMessage(opText, []byte(`{"id":`+strconv.Itoa(id)+`,"op":"`+op+`","channel":"`+channel+`"}`)); err != nil {
			return fmt.Errorf("bench: %s: %w", op, err)
		}
		for {
			_, msg, err := c.readMessage()
			if err != nil {
				return fmt.Errorf("bench: %s reply: %w", op, err)
			}
			if bytes.HasPrefix(msg, prefix) {
				if bytes.Contains(msg, []byte(`"error"`)) {
					return fmt.Errorf("bench: %s refused: %.200s", op, msg)
				}
				break
			}
		}
		h.record(0, time.Since(start))
	}
}

// drain reads and drops what c receives until it closes.
func drain(c *wsConn) {
	for {
		if _, _, err := c.readMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
