package client

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// queued renders a subscription's queue: offsets, and events in brackets.
func queued(s *Subscription) string {
	var b strings.Builder
	for _, it := range s.queue {
		if it.ev != nil {
			fmt.Fprintf(&b, "[%s %s/%d] ", it.ev.Type, it.ev.Position.Epoch, it.ev.Position.Offset)
			continue
		}
		fmt.Fprintf(&b, "%s/%d ", it.pub.Epoch, it.pub.Offset)
	}
	return strings.TrimSpace(b.String())
}

func pubs(epoch string, offsets ...uint64) []*protocol.Publication {
	out := make([]*protocol.Publication, len(offsets))
	for i, o := range offsets {
		out[i] = &protocol.Publication{Channel: "ch", Epoch: epoch, Offset: o, Data: json.RawMessage("1")}
	}
	return out
}

func replyFrame(t *testing.T, res protocol.SubscribeResult) *frame {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return &frame{ID: 1, Result: b}
}

// TestDedupe drives a subscription through subscribe replies and pushes, on
// one connection and across reconnects, and checks what it queues for its
// handler: each offset once, in order, with events where the stream jumps.
func TestDedupe(t *testing.T) {
	type step struct {
		reconnect bool                      // a new connection: resubscribe with recovery
		reply     *protocol.SubscribeResult // the subscribe reply on it
		push      []*protocol.Publication
	}
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{
			name:  "duplicates pushed twice are dropped",
			steps: []step{{reply: &protocol.SubscribeResult{Epoch: "e", Offset: 0}, push: pubs("e", 1, 2, 2, 1, 3)}},
			want:  "e/1 e/2 e/3",
		},
		{
			name:  "pushes below the subscribe position are dropped",
			steps: []step{{reply: &protocol.SubscribeResult{Epoch: "e", Offset: 5}, push: pubs("e", 4, 5, 6)}},
			want:  "e/6",
		},
		{
			name:  "a hole in the pushes is a gap",
			steps: []step{{reply: &protocol.SubscribeResult{Epoch: "e"}, push: pubs("e", 1, 4)}},
			want:  "e/1 [gap e/3] e/4",
		},
		{
			name: "recovery overlapping what was delivered",
			steps: []step{
				{reply: &protocol.SubscribeResult{Epoch: "e"}, push: pubs("e", 1, 2, 3)},
				{reconnect: true, reply: &protocol.SubscribeResult{Epoch: "e", Offset: 5, Recovered: true, Publications: pubs("e", 2, 3, 4, 5)}, push: pubs("e", 5, 6)},
			},
			want: "e/1 e/2 e/3 [recovered e/5] e/4 e/5 e/6",
		},
		{
			name: "recovery failed: gap to the new epoch",
			steps: []step{
				{reply: &protocol.SubscribeResult{Epoch: "e"}, push: pubs("e", 1, 2)},
				{reconnect: true, reply: &protocol.SubscribeResult{Epoch: "f", Offset: 7}, push: pubs("f", 7, 8)},
			},
			want: "e/1 e/2 [gap f/7] f/8",
		},
		{
			name: "pushes of a dead connection are ignored",
			steps: []step{
				{reply: &protocol.SubscribeResult{Epoch: "e"}, push: pubs("e", 1)},
				{reconnect: true, reply: &protocol.SubscribeResult{Epoch: "e", Offset: 1, Recovered: true}, push: pubs("e", 2)},
			},
			want: "e/1 [recovered e/1] e/2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Client{log: slog.New(slog.DiscardHandler), subs: map[string]*Subscription{}}
			s := &Subscription{c: c, channel: "ch", done: make(chan struct{}), wake: make(chan struct{}, 1), ready: make(chan struct{})}
			var old *conn
			for _, st := range tt.steps {
				cn := &conn{c: c}
				var rec *protocol.Position
				if s.hasPos {
					p := s.pos
					rec = &p
				}
				s.subscribed(cn, replyFrame(t, *st.reply), rec)
				for _, p := range st.push {
					s.apply(cn, p)
				}
				if old != nil { // late pushes from the previous connection
					s.apply(old, pubs(s.pos.Epoch, s.pos.Offset+1)[0])
				}
				old = cn
			}
			if got := queued(s); got != tt.want {
				t.Fatalf("queued %q, want %q", got, tt.want)
			}
		})
	}
}
