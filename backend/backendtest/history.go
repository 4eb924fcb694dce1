package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// HistoryConfig is what the history suite asks of a store it creates.
type HistoryConfig struct {
	// Size is how many publications the store keeps per channel. It is at
	// least 1.
	Size int
	// TTL is how long the store keeps a publication. Zero keeps it until it
	// falls out of Size.
	TTL time.Duration
	// Now is the suite's clock, for stores that read one (HistorySuite's
	// ReadsClock).
	Now func() time.Time
}

// HistorySuite says how to test an implementation of backend.History.
type HistorySuite struct {
	// New returns a new, empty store of its own, configured as cfg says, and
	// registers its cleanup with t. Required. The suite closes some stores
	// itself, before their cleanup runs.
	New func(t *testing.T, cfg HistoryConfig) backend.History
	// ReadsClock says the stores New returns read cfg.Now for every time they
	// need, expiry included: the suite then makes time pass by advancing the
	// clock instead of waiting.
	ReadsClock bool
	// Restart, when set, stops h as its process stopping would and returns a
	// store created anew with cfg over whatever h's backing system kept (a
	// memory store keeps nothing, a JetStream one keeps its stream). The suite
	// checks that the epoch of a channel stays exactly when its history does.
	Restart func(t *testing.T, h backend.History, cfg HistoryConfig) backend.History
}

// TestHistory runs the contract suite of backend.History against the stores
// s.New returns.
func TestHistory(t *testing.T, s HistorySuite) {
	if s.New == nil {
		t.Fatal("backendtest: HistorySuite.New is nil")
	}
	t.Run("EmptyChannelAndEpochStability", s.testEmptyAndStable)
	t.Run("AppendPositionsAndRead", s.testAppendRead)
	t.Run("ChannelsAreIndependent", s.testIndependent)
	t.Run("ConcurrentAppends", s.testConcurrent)
	t.Run("Window", s.testWindow)
	t.Run("TTL", s.testTTL)
	t.Run("Restart", s.testRestart)
	t.Run("Canceled", s.testCanceled)
	t.Run("Closed", s.testClosed)
}

// historyCase is one test's store and what it needs to drive it.
type historyCase struct {
	t   *testing.T
	h   backend.History
	tl  *timeline
	cfg HistoryConfig
	ctx context.Context
}

func (s HistorySuite) open(t *testing.T, size int, ttl time.Duration) *historyCase {
	t.Helper()
	tl := newTimeline(s.ReadsClock)
	cfg := HistoryConfig{Size: size, TTL: ttl, Now: tl.clock.Now}
	h := s.New(t, cfg)
	if h == nil {
		t.Fatal("HistorySuite.New returned nil")
	}
	return &historyCase{t: t, h: h, tl: tl, cfg: cfg, ctx: testContext(t)}
}

// pubData is the data of the n-th publication a test appends to a channel.
func pubData(n int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"n":%d}`, n)) }

// append appends the n-th publication to channel and checks Append set the
// publication's position to the one it returned.
func (c *historyCase) append(channel string, n int) protocol.Position {
	c.t.Helper()
	pub := &protocol.Publication{Channel: channel, Data: pubData(n)}
	pos, err := c.h.Append(c.ctx, pub)
	if err != nil {
		c.t.Fatalf("Append(%s #%d): %v", channel, n, err)
	}
	if pub.Epoch != pos.Epoch || pub.Offset != pos.Offset {
		c.t.Fatalf("Append returned %+v but set the publication to {%s %d}", pos, pub.Epoch, pub.Offset)
	}
	return pos
}

func (c *historyCase) read(channel string, q backend.Query) backend.Result {
	c.t.Helper()
	res, err := c.h.Read(c.ctx, channel, q)
	if err != nil {
		c.t.Fatalf("Read(%s, %+v): %v", channel, q, err)
	}
	return res
}

// checkRun says whether pubs are channel's publications from to to (none when
// to < from) in epoch, with the data pubData gave them.
func checkRun(pubs []*protocol.Publication, channel, epoch string, from, to uint64) error {
	want := 0
	if to >= from {
		want = int(to - from + 1)
	}
	if len(pubs) != want {
		return fmt.Errorf("got publications %v, want offsets %d..%d", offsets(pubs), from, to)
	}
	for i, p := range pubs {
		off := from + uint64(i)
		if p.Channel != channel || p.Epoch != epoch || p.Offset != off || string(p.Data) != string(pubData(int(off))) {
			return fmt.Errorf("publication %d is {%s %s %d %s}, want {%s %s %d %s}",
				i, p.Channel, p.Epoch, p.Offset, p.Data, channel, epoch, off, pubData(int(off)))
		}
	}
	return nil
}

func offsets(pubs []*protocol.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

func pos(epoch string, offset uint64) *protocol.Position {
	return &protocol.Position{Epoch: epoch, Offset: offset}
}

func (s HistorySuite) testEmptyAndStable(t *testing.T) {
	c := s.open(t, 10, 0)
	res := c.read("empty", backend.Query{Limit: backend.NoLimit})
	epoch := res.Top.Epoch
	if epoch == "" || res.Top.Offset != 0 || len(res.Publications) != 0 {
		t.Fatalf("Read of a new channel = top %+v, %d publications; want offset 0 in a non-empty epoch, none", res.Top, len(res.Publications))
	}
	if again := c.read("empty", backend.Query{}); again.Top != res.Top {
		t.Fatalf("second Read of a new channel: top %+v, first said %+v", again.Top, res.Top)
	}
	for i := 1; i <= 10; i++ {
		want := protocol.Position{Epoch: epoch, Offset: uint64(i)}
		if got := c.append("empty", i); got != want {
			t.Fatalf("Append #%d = %+v, want %+v (the first publication takes the epoch Read announced)", i, got, want)
		}
		res := c.read("empty", backend.Query{Since: pos(epoch, 0), Limit: 0})
		if res.Top != want || len(res.Publications) != 0 {
			t.Fatalf("Read with Limit 0 after Append #%d = top %+v, %d publications; want top %+v, none", i, res.Top, len(res.Publications), want)
		}
	}
}

func (s HistorySuite) testAppendRead(t *testing.T) {
	c := s.open(t, 10, 0)
	first := c.append("ch", 1)
	for i := 2; i <= 5; i++ {
		if got := c.append("ch", i); got.Epoch != first.Epoch || got.Offset != uint64(i) {
			t.Fatalf("Append #%d = %+v, want offset %d in epoch %q", i, got, i, first.Epoch)
		}
	}
	if first.Offset != 1 {
		t.Fatalf("first Append got offset %d, want 1", first.Offset)
	}
	res := c.read("ch", backend.Query{Limit: backend.NoLimit})
	if res.Top != *pos(first.Epoch, 5) {
		t.Fatalf("top = %+v, want {%s 5}", res.Top, first.Epoch)
	}
	if err := checkRun(res.Publications, "ch", first.Epoch, 1, 5); err != nil {
		t.Fatal(err)
	}
}

func (s HistorySuite) testIndependent(t *testing.T) {
	c := s.open(t, 10, 0)
	a := []protocol.Position{c.append("a", 1), c.append("a", 2), c.append("a", 3)}
	b := []protocol.Position{c.append("b", 1), c.append("b", 2)}
	if a[2].Offset != 3 || b[0].Offset != 1 || b[1].Offset != 2 {
		t.Fatalf("offsets a %v, b %v: want 1..3 and 1..2, each channel its own", a, b)
	}
	for _, tc := range []struct {
		channel string
		epoch   string
		n       uint64
	}{{"a", a[0].Epoch, 3}, {"b", b[0].Epoch, 2}, {"c", "", 0}} {
		res := c.read(tc.channel, backend.Query{Limit: backend.NoLimit})
		if tc.channel == "c" {
			tc.epoch = res.Top.Epoch
		}
		if res.Top != *pos(tc.epoch, tc.n) {
			t.Errorf("%s: top %+v, want {%s %d}", tc.channel, res.Top, tc.epoch, tc.n)
		}
		if err := checkRun(res.Publications, tc.channel, tc.epoch, 1, tc.n); err != nil {
			t.Errorf("%s: %v", tc.channel, err)
		}
	}
}

// testConcurrent appends to one channel from several goroutines while another
// reads: every Append gets its own offset, the offsets are 1..n without a
// hole, each writer's offsets increase, every Read sees a run ending at its top.
func (s HistorySuite) testConcurrent(t *testing.T) {
	const writers, each = 8, 50
	c := s.open(t, writers*each, 0)
	type appended struct {
		pos  protocol.Position
		data string
	}
	got := make([][]appended, writers)
	errs := make(chan error, writers+1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // reader: each Read is one consistent cut
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := c.h.Read(c.ctx, "ch", backend.Query{Limit: backend.NoLimit})
			if err != nil {
				errs <- fmt.Errorf("Read during appends: %w", err)
				return
			}
			for i, p := range res.Publications {
				if p.Epoch != res.Top.Epoch || p.Offset != uint64(i+1) {
					errs <- fmt.Errorf("Read during appends: offsets %v in epoch %s, top %+v: want 1..top", offsets(res.Publications), p.Epoch, res.Top)
					return
				}
			}
			if uint64(len(res.Publications)) != res.Top.Offset {
				errs <- fmt.Errorf("Read during appends: %d publications, top %+v", len(res.Publications), res.Top)
				return
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for n := range each {
				data := fmt.Sprintf(`{"w":%d,"n":%d}`, w, n)
				p, err := c.h.Append(c.ctx, &protocol.Publication{Channel: "ch", Data: json.RawMessage(data)})
				if err != nil {
					errs <- fmt.Errorf("writer %d: Append: %w", w, err)
					return
				}
				if p.Offset <= last {
					errs <- fmt.Errorf("writer %d: Append gave offset %d after %d", w, p.Offset, last)
					return
				}
				last = p.Offset
				got[w] = append(got[w], appended{p, data})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	byOffset := make(map[uint64]string)
	epoch := got[0][0].pos.Epoch
	for _, g := range got {
		for _, a := range g {
			if a.pos.Epoch != epoch {
				t.Fatalf("epochs %q and %q in one channel without loss", epoch, a.pos.Epoch)
			}
			if prev, dup := byOffset[a.pos.Offset]; dup {
				t.Fatalf("offset %d given to %s and %s", a.pos.Offset, prev, a.data)
			}
			byOffset[a.pos.Offset] = a.data
		}
	}
	res := c.read("ch", backend.Query{Limit: backend.NoLimit})
	if res.Top != *pos(epoch, writers*each) || len(res.Publications) != writers*each {
		t.Fatalf("after %d appends: top %+v, %d publications", writers*each, res.Top, len(res.Publications))
	}
	for i, p := range res.Publications {
		if p.Offset != uint64(i+1) || string(p.Data) != byOffset[p.Offset] {
			t.Fatalf("publication %d: offset %d data %s; Append gave offset %d to %s", i, p.Offset, p.Data, i+1, byOffset[uint64(i+1)])
		}
	}
}

// testWindow reads a channel that dropped its oldest publications, at every
// edge of what it kept.
func (s HistorySuite) testWindow(t *testing.T) {
	const size, total = 5, 12 // keeps 8..12
	c := s.open(t, size, 0)
	var e string
	for i := 1; i <= total; i++ {
		e = c.append("ch", i).Epoch
	}
	other := "not-" + e
	none := [2]uint64{1, 0}
	tests := []struct {
		name  string
		since *protocol.Position
		limit int
		want  [2]uint64 // offsets from, to
	}{
		{"no since", nil, backend.NoLimit, [2]uint64{8, 12}},
		{"since 0", pos(e, 0), backend.NoLimit, [2]uint64{8, 12}},
		{"since long before the window", pos(e, 3), backend.NoLimit, [2]uint64{8, 12}},
		{"since top-size: just before the oldest kept", pos(e, total-size), backend.NoLimit, [2]uint64{8, 12}},
		{"since the oldest kept", pos(e, 8), backend.NoLimit, [2]uint64{9, 12}},
		{"since top-1", pos(e, total-1), backend.NoLimit, [2]uint64{12, 12}},
		{"since top", pos(e, total), backend.NoLimit, none},
		{"since beyond top", pos(e, total+1), backend.NoLimit, none},
		{"since far beyond top", pos(e, 1000), backend.NoLimit, none},
		{"since of another epoch", pos(other, 10), backend.NoLimit, [2]uint64{8, 12}},
		{"since of another epoch beyond top", pos(other, 1000), backend.NoLimit, [2]uint64{8, 12}},
		{"since of the empty epoch: the current one", pos("", 10), backend.NoLimit, [2]uint64{11, 12}},
		{"limit", pos(e, total-size), 2, [2]uint64{8, 9}},
		{"limit without since", nil, 1, [2]uint64{8, 8}},
		{"limit above what is left", pos(e, 9), 100, [2]uint64{10, 12}},
		{"limit equal to what is left", pos(e, 9), 3, [2]uint64{10, 12}},
		{"limit 0: the top only", pos(e, total-size), 0, none},
		{"limit below NoLimit: the top only", pos(e, total-size), backend.NoLimit - 1, none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.h.Read(c.ctx, "ch", backend.Query{Since: tc.since, Limit: tc.limit})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if res.Top != *pos(e, total) {
				t.Errorf("top = %+v, want {%s %d}", res.Top, e, total)
			}
			if err := checkRun(res.Publications, "ch", e, tc.want[0], tc.want[1]); err != nil {
				t.Error(err)
			}
		})
	}
}

// testTTL lets publications outlive the store's TTL, first some, then all.
func (s HistorySuite) testTTL(t *testing.T) {
	raceTTL(t, !s.ReadsClock, func(d time.Duration) error {
		return s.ttlSteps(t, d)
	})
}

// ttlSteps are testTTL's, on a store whose publications live d.
func (s HistorySuite) ttlSteps(t *testing.T, d time.Duration) error {
	c := s.open(t, 10, d)
	first := c.tl.now()
	e := c.append("ch", 1).Epoch
	c.append("ch", 2)
	c.append("ch", 3)
	c.tl.pass(d / 2)
	second := c.tl.now()
	c.append("ch", 4)
	c.append("ch", 5)
	err := c.tl.within(first.Add(d), func() error {
		res := c.read("ch", backend.Query{Limit: backend.NoLimit})
		if err := checkRun(res.Publications, "ch", e, 1, 5); err != nil {
			return fmt.Errorf("before any TTL passed: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}

	c.tl.pass(d/2 + d/10) // 1..3 are past their TTL, 4 and 5 are not
	err = c.tl.await(second.Add(d), func() error {
		for _, since := range []*protocol.Position{nil, pos(e, 1)} {
			res := c.read("ch", backend.Query{Since: since, Limit: backend.NoLimit})
			if res.Top != *pos(e, 5) {
				return fmt.Errorf("after the TTL of 1..3: top %+v, want {%s 5}", res.Top, e)
			}
			if err := checkRun(res.Publications, "ch", e, 4, 5); err != nil {
				return fmt.Errorf("after the TTL of 1..3, since %v: %w", since, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	c.tl.pass(d) // all are past their TTL
	var top protocol.Position
	err = c.tl.await(time.Time{}, func() error {
		res := c.read("ch", backend.Query{Limit: backend.NoLimit})
		top = res.Top
		if len(res.Publications) != 0 {
			return fmt.Errorf("after every TTL: publications %v, want none", offsets(res.Publications))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The store may keep the channel's position, or forget the channel with
	// its epoch: either way a reader must not be told a wrong position.
	next := c.append("ch", 6)
	switch {
	case top.Epoch == e:
		if top.Offset != 5 {
			return fmt.Errorf("after every TTL: top %+v in the same epoch, want offset 5", top)
		}
		if next != *pos(e, 6) && (next.Epoch == e || next.Offset != 1) {
			return fmt.Errorf("Append after every TTL = %+v, want {%s 6}, or offset 1 in a new epoch", next, e)
		}
	default:
		if top.Offset != 0 {
			return fmt.Errorf("after every TTL: top %+v in a new epoch, want offset 0", top)
		}
		if next != *pos(top.Epoch, 1) {
			return fmt.Errorf("Append after the channel was forgotten = %+v, want {%s 1}", next, top.Epoch)
		}
	}
	return nil
}

func (s HistorySuite) testRestart(t *testing.T) {
	if s.Restart == nil {
		t.Skip("HistorySuite.Restart is nil")
	}
	c := s.open(t, 10, 0)
	e := c.append("ch", 1).Epoch
	c.append("ch", 2)
	c.append("ch", 3)
	c.h = s.Restart(t, c.h, c.cfg)
	res := c.read("ch", backend.Query{Since: pos(e, 0), Limit: backend.NoLimit})
	if res.Top.Epoch == e { // the history stayed: all of it, as it was
		if res.Top.Offset != 3 {
			t.Fatalf("after Restart: top %+v in the same epoch, want offset 3", res.Top)
		}
		if err := checkRun(res.Publications, "ch", e, 1, 3); err != nil {
			t.Fatalf("after Restart in the same epoch: %v", err)
		}
		if next := c.append("ch", 4); next != *pos(e, 4) {
			t.Fatalf("Append after Restart = %+v, want {%s 4}", next, e)
		}
		return
	}
	if res.Top.Offset != 0 || len(res.Publications) != 0 {
		t.Fatalf("after Restart in a new epoch: top %+v, publications %v; want offset 0, none", res.Top, offsets(res.Publications))
	}
	if next := c.append("ch", 1); next != *pos(res.Top.Epoch, 1) {
		t.Fatalf("Append after Restart = %+v, want {%s 1}", next, res.Top.Epoch)
	}
}

func (s HistorySuite) testCanceled(t *testing.T) {
	c := s.open(t, 10, 0)
	e := c.append("ch", 1).Epoch
	if _, err := c.h.Append(canceled(), &protocol.Publication{Channel: "ch", Data: pubData(2)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := c.h.Read(canceled(), "ch", backend.Query{Limit: backend.NoLimit}); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %v, want context.Canceled", err)
	}
	res := c.read("ch", backend.Query{Limit: backend.NoLimit})
	if err := checkRun(res.Publications, "ch", e, 1, 1); err != nil || res.Top != *pos(e, 1) {
		t.Fatalf("after a cancelled Append: top %+v, %v; want it not stored", res.Top, err)
	}
	if next := c.append("ch", 2); next != *pos(e, 2) {
		t.Fatalf("Append after a cancelled one = %+v, want {%s 2}", next, e)
	}
}

func (s HistorySuite) testClosed(t *testing.T) {
	c := s.open(t, 10, 0)
	closer, ok := c.h.(backend.Closer)
	if !ok {
		t.Skip("the store is not a backend.Closer")
	}
	c.append("ch", 1)
	if err := closer.Close(c.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := c.h.Append(c.ctx, &protocol.Publication{Channel: "ch", Data: pubData(2)}); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Append after Close: %v, want backend.ErrClosed", err)
	}
	for _, ch := range []string{"ch", "new"} {
		if _, err := c.h.Read(c.ctx, ch, backend.Query{Limit: backend.NoLimit}); !errors.Is(err, backend.ErrClosed) {
			t.Errorf("Read(%s) after Close: %v, want backend.ErrClosed", ch, err)
		}
	}
}
