package memory_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
)

// newHistory returns a memory History with the suite's configuration, closed
// when t ends.
func newHistory(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
	h := memory.NewHistory(memory.HistoryConfig{Size: cfg.Size, TTL: cfg.TTL, Now: cfg.Now})
	t.Cleanup(func() { closeBackend(t, h) })
	return h
}

func closeBackend(t *testing.T, c backend.Closer) {
	t.Helper()
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestHistoryContract(t *testing.T) {
	backendtest.TestHistory(t, backendtest.HistorySuite{
		New:        newHistory,
		ReadsClock: true,
		Restart: func(t *testing.T, h backend.History, cfg backendtest.HistoryConfig) backend.History {
			closeBackend(t, h.(backend.Closer))
			return newHistory(t, cfg)
		},
	})
}

// TestHistoryContractRealTime runs the suite as it runs a store that keeps
// real time, so that the suite's waiting path is itself tested.
func TestHistoryContractRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real TTLs")
	}
	t.Parallel()
	backendtest.TestHistory(t, backendtest.HistorySuite{
		New: func(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
			cfg.Now = nil
			return newHistory(t, cfg)
		},
	})
}

// newClockHistory returns a History on a clock of its own, closed when t ends.
func newClockHistory(t *testing.T, cfg memory.HistoryConfig) (*memory.History, *backendtest.Clock) {
	clock := backendtest.NewClock(time.Now())
	cfg.Now = clock.Now
	h := memory.NewHistory(cfg)
	t.Cleanup(func() { closeBackend(t, h) })
	return h, clock
}

func appendPub(t *testing.T, h backend.History, channel string) protocol.Position {
	t.Helper()
	p, err := h.Append(context.Background(), &protocol.Publication{Channel: channel, Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatalf("Append(%s): %v", channel, err)
	}
	return p
}

func top(t *testing.T, h backend.History, channel string) protocol.Position {
	t.Helper()
	res, err := h.Read(context.Background(), channel, backend.Query{})
	if err != nil {
		t.Fatalf("Read(%s): %v", channel, err)
	}
	return res.Top
}

// TestHistoryMetaTTL checks a channel is forgotten, and starts a new epoch,
// only once it holds nothing and nothing was appended to it for MetaTTL.
func TestHistoryMetaTTL(t *testing.T) {
	const metaTTL = time.Minute
	h, clock := newClockHistory(t, memory.HistoryConfig{Size: 10, TTL: time.Hour, MetaTTL: metaTTL, SweepInterval: time.Hour})
	first := appendPub(t, h, "ch")
	appendPub(t, h, "other")

	clock.Advance(2 * metaTTL) // publications are kept: the channel with them stays
	h.Sweep()
	if got := top(t, h, "ch"); got != (protocol.Position{Epoch: first.Epoch, Offset: 1}) {
		t.Fatalf("channel with publications past MetaTTL: top %+v, want {%s 1}", got, first.Epoch)
	}

	clock.Advance(time.Hour) // the publications expire: the channels, MetaTTL past their last Append, go
	h.Sweep()
	if h.Len() != 0 {
		t.Fatalf("Len = %d once every channel expired, want 0", h.Len())
	}
	got := top(t, h, "ch")
	if got.Epoch == first.Epoch || got.Offset != 0 {
		t.Fatalf("forgotten channel: top %+v, want offset 0 in an epoch other than %s", got, first.Epoch)
	}
	if next := appendPub(t, h, "ch"); next != (protocol.Position{Epoch: got.Epoch, Offset: 1}) {
		t.Fatalf("Append to a forgotten channel = %+v, want {%s 1}", next, got.Epoch)
	}
}

// TestHistoryKeep checks a channel Keep holds is not forgotten, however long
// it stays quiet, and is forgotten once Keep lets go.
func TestHistoryKeep(t *testing.T) {
	const metaTTL = time.Minute
	var kept sync.Map
	h, clock := newClockHistory(t, memory.HistoryConfig{Size: 10, TTL: time.Minute, MetaTTL: metaTTL, SweepInterval: time.Hour,
		Keep: func(ch string) bool { _, ok := kept.Load(ch); return ok }})
	kept.Store("held", true)
	first := appendPub(t, h, "held")
	appendPub(t, h, "free")
	clock.Advance(24 * time.Hour)
	h.Sweep()
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want only the held channel", h.Len())
	}
	if next := appendPub(t, h, "held"); next != (protocol.Position{Epoch: first.Epoch, Offset: 2}) {
		t.Fatalf("Append to the held channel after a quiet day = %+v, want {%s 2}", next, first.Epoch)
	}
	kept.Delete("held")
	clock.Advance(2 * time.Hour)
	h.Sweep()
	if h.Len() != 0 {
		t.Fatalf("Len = %d once Keep lets go, want 0", h.Len())
	}
}

// TestHistoryPositionsOnly checks a store of Size 0 gives positions and keeps
// none, and forgets a channel MetaTTL after its last Append.
func TestHistoryPositionsOnly(t *testing.T) {
	const metaTTL = time.Minute
	h, clock := newClockHistory(t, memory.HistoryConfig{MetaTTL: metaTTL, SweepInterval: time.Hour})
	first := appendPub(t, h, "ch")
	if second := appendPub(t, h, "ch"); second != (protocol.Position{Epoch: first.Epoch, Offset: 2}) {
		t.Fatalf("second Append = %+v, want {%s 2}", second, first.Epoch)
	}
	res, err := h.Read(context.Background(), "ch", backend.Query{Limit: backend.NoLimit})
	if err != nil || len(res.Publications) != 0 || res.Top.Offset != 2 {
		t.Fatalf("Read = %d publications, top %+v, %v; want none, offset 2", len(res.Publications), res.Top, err)
	}
	clock.Advance(metaTTL)
	h.Sweep()
	if got := top(t, h, "ch"); got.Epoch != first.Epoch {
		t.Fatalf("forgotten at MetaTTL: epoch %s, was %s", got.Epoch, first.Epoch)
	}
	clock.Advance(time.Nanosecond)
	h.Sweep()
	if h.Len() != 0 {
		t.Fatalf("Len = %d after MetaTTL passed, want 0", h.Len())
	}
	if got := top(t, h, "ch"); got.Epoch == first.Epoch || got.Offset != 0 {
		t.Fatalf("after MetaTTL: top %+v, want offset 0 in a new epoch", got)
	}
}

// TestHistoryMaxChannels checks the store refuses a channel past MaxChannels,
// on Append and on Read, and takes one again once a channel is forgotten.
func TestHistoryMaxChannels(t *testing.T) {
	h, clock := newClockHistory(t, memory.HistoryConfig{Size: 1, TTL: time.Second, MetaTTL: time.Second, MaxChannels: 2, SweepInterval: time.Hour})
	ctx := context.Background()
	appendPub(t, h, "a")
	top(t, h, "b") // a Read makes the channel known too
	if _, err := h.Append(ctx, &protocol.Publication{Channel: "c"}); !errors.Is(err, backend.ErrTooManyChannels) {
		t.Fatalf("Append to a third channel: %v, want ErrTooManyChannels", err)
	}
	if _, err := h.Read(ctx, "c", backend.Query{}); !errors.Is(err, backend.ErrTooManyChannels) {
		t.Fatalf("Read of a third channel: %v, want ErrTooManyChannels", err)
	}
	appendPub(t, h, "a") // known channels still work
	appendPub(t, h, "b")
	if h.Len() != 2 {
		t.Fatalf("Len = %d, want 2", h.Len())
	}
	clock.Advance(2 * time.Second)
	h.Sweep()
	appendPub(t, h, "c")
	if h.Len() != 1 {
		t.Fatalf("Len = %d after a and b were forgotten and c added, want 1", h.Len())
	}
}

// TestHistorySweeper checks the sweeper forgets channels by itself, and that
// Close stops it.
func TestHistorySweeper(t *testing.T) {
	h, clock := newClockHistory(t, memory.HistoryConfig{MetaTTL: time.Minute, SweepInterval: time.Millisecond})
	appendPub(t, h, "ch")
	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for h.Len() != 0 { // nothing signals a sweep: look until it happened
		if time.Now().After(deadline) {
			t.Fatalf("Len = %d 5s past MetaTTL with a sweep every millisecond", h.Len())
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestHistoryPerChannel: a channel's own size and TTL (HistoryConfig.Channel)
// apply to it, and the store's to the others.
func TestHistoryPerChannel(t *testing.T) {
	h, clock := newClockHistory(t, memory.HistoryConfig{Size: 5, TTL: time.Hour,
		Channel: func(channel string) (int, time.Duration) {
			switch channel {
			case "big":
				return 8, time.Hour
			case "short":
				return 8, time.Minute
			case "none":
				return 0, 0
			}
			return 5, time.Hour
		}})
	for _, ch := range []string{"big", "short", "none", "other"} {
		for range 10 {
			appendPub(t, h, ch)
		}
	}
	kept := func(ch string) int {
		res, err := h.Read(context.Background(), ch, backend.Query{Limit: backend.NoLimit})
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Publications)
	}
	for _, tt := range []struct {
		channel string
		want    int
	}{{"big", 8}, {"short", 8}, {"none", 0}, {"other", 5}} {
		if got := kept(tt.channel); got != tt.want {
			t.Errorf("%s keeps %d publications, want %d", tt.channel, got, tt.want)
		}
	}
	clock.Advance(2 * time.Minute)
	if got := kept("short"); got != 0 {
		t.Errorf("short keeps %d publications past its TTL, want 0", got)
	}
	if got := kept("big"); got != 8 {
		t.Errorf("big keeps %d publications within its TTL, want 8", got)
	}
}
