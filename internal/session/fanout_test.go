package session

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// discardConn is a Conn that drops what it is given and counts the writes.
type discardConn struct {
	writes atomic.Int64
	bytes  atomic.Int64
	closed atomic.Bool
}

func (c *discardConn) Format() wire.Format { return wire.WebSocket }

func (c *discardConn) Write(b []byte) error {
	c.bytes.Add(int64(len(b)))
	c.writes.Add(1)
	return nil
}

func (c *discardConn) Close(protocol.Disconnect) { c.closed.Store(true) }

func newTestManager(h *hub.Hub) *Manager {
	return NewManager(Config{MaxSubscriptions: 8, MaxChannelLength: 255, PingInterval: time.Second},
		h, slog.New(slog.NewTextHandler(io.Discard, nil)), "t")
}

// subscribed opens n sessions on discarding conns, each subscribed to channel
// (its reply is write number 1).
func subscribed(tb testing.TB, m *Manager, n int, channel string) []*discardConn {
	tb.Helper()
	conns := make([]*discardConn, n)
	cmd := []byte(`{"id":1,"op":"subscribe","channel":"` + channel + `"}`)
	for i := range conns {
		conns[i] = &discardConn{}
		m.Open(conns[i]).Handle(cmd)
		if conns[i].writes.Load() != 1 {
			tb.Fatalf("session %d: no subscribe reply", i)
		}
	}
	return conns
}

// waitWrites waits until every conn has at least want writes.
func waitWrites(tb testing.TB, conns []*discardConn, want int64) {
	deadline := time.Now().Add(10 * time.Second)
	for i, c := range conns {
		for c.writes.Load() < want {
			if time.Now().After(deadline) {
				tb.Fatalf("conn %d has %d writes, want %d", i, c.writes.Load(), want)
			}
			runtime.Gosched()
		}
	}
}

func TestCommandObserved(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{}, hub.Config{})
	m := newTestManager(h)
	var ops []string
	m.cfg.ObserveCommand = func(op string, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration for %s", op)
		}
		ops = append(ops, op)
	}
	s := m.Open(&discardConn{})
	tests := []struct{ cmd, op string }{
		{`{"id":1,"op":"ping"}`, "ping"},
		{`{"id":2,"op":"subscribe","channel":"a"}`, "subscribe"},
		{`{"id":3,"op":"subscribe","channel":"a"}`, "subscribe"},
		{`{"id":4,"op":"nope"}`, "nope"},
		{`{not json`, ""},
	}
	for i, tt := range tests {
		s.Handle([]byte(tt.cmd))
		if len(ops) != i+1 || ops[i] != tt.op {
			t.Fatalf("after %s: observed %q, want %q last", tt.cmd, ops, tt.op)
		}
	}
}

func TestFanoutThroughSessions(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{}, hub.Config{ChunkSize: 64})
	m := newTestManager(h)
	conns := subscribed(t, m, 1000, "news")
	const pubs = 5
	for range pubs {
		if _, err := m.Publish(context.Background(), "news", json.RawMessage(`{"v":1}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Publications published while a batch is being delivered go out together:
	// count them in bytes rather than writes (the subscribe reply is there too).
	frame := len(wire.WebSocket.AppendFrame(nil, mustEncode(t, "news", h)))
	deadline := time.Now().Add(10 * time.Second)
	for i, c := range conns {
		for c.closed.Load() || c.bytes.Load() < int64(pubs*frame) {
			if c.closed.Load() || time.Now().After(deadline) {
				t.Fatalf("conn %d: %d bytes, closed %v; want %d frames of %d bytes", i, c.bytes.Load(), c.closed.Load(), pubs, frame)
			}
			runtime.Gosched()
		}
	}
	if got := h.Deliveries(); got != 1000*pubs {
		t.Fatalf("hub deliveries %d, want %d", got, 1000*pubs)
	}
}

// mustEncode returns the encoding of a publication of the test on channel:
// the same size as every one of them (same data, one-digit offsets).
func mustEncode(t *testing.T, channel string, h *hub.Hub) []byte {
	t.Helper()
	res, err := h.History(context.Background(), channel, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &protocol.Publication{Channel: channel, Epoch: res.Epoch, Offset: 1, Data: json.RawMessage(`{"v":1}`)}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkFanoutSessions publishes through the manager to N sessions on
// discarding conns and waits until every one has its frame: the whole server
// path short of the socket write. One op is one publication.
func BenchmarkFanoutSessions(b *testing.B) {
	for _, n := range []int{10_000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := newHub(b, memory.HistoryConfig{}, hub.Config{})
			m := newTestManager(h)
			conns := subscribed(b, m, n, "bench")
			data := json.RawMessage(`{"seq":12345,"ts":1700000000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxx"}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := m.Publish(context.Background(), "bench", data, nil); err != nil {
					b.Fatal(err)
				}
				waitWrites(b, conns, int64(i+2))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}
