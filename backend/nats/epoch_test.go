package nats_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// TestEpochFollowsTheStream checks a channel's epoch stays while its stream
// keeps its messages, and changes when the stream is purged or deleted (a
// deleted stream is created again by the next append).
func TestEpochFollowsTheStream(t *testing.T) {
	srv := startServer(t)
	cfg := namespace(srv.URL())
	b := open(t, cfg)
	h := b.History()
	ctx := context.Background()
	top := func() protocol.Position {
		t.Helper()
		res, err := h.Read(ctx, "ch", backend.Query{})
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		return res.Top
	}
	// Another node subscribed throughout gets every publication of every
	// epoch, in order.
	other := newNode(t, cfg)
	if err := other.be.Broker().Subscribe(ctx, "ch"); err != nil {
		t.Fatal(err)
	}
	var published []protocol.Position
	appendOne := func() protocol.Position {
		t.Helper()
		p := &protocol.Publication{Channel: "ch", Data: json.RawMessage(`1`)}
		pos, err := h.Append(ctx, p)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if err := b.Broker().Publish(ctx, p); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		published = append(published, pos)
		return pos
	}
	first := appendOne()
	appendOne()
	if got := open(t, cfg).History(); got == nil { // another node sees the same position
		t.Fatal("no history")
	} else if res, err := got.Read(ctx, "ch", backend.Query{}); err != nil || res.Top != (protocol.Position{Epoch: first.Epoch, Offset: 2}) {
		t.Fatalf("another node reads top %+v (%v), want {%s 2}", res.Top, err, first.Epoch)
	}

	js, err := jetstream.New(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	purged := top()
	if purged.Epoch == first.Epoch || purged.Offset != 0 {
		t.Fatalf("after a purge: top %+v, want offset 0 in an epoch other than %s", purged, first.Epoch)
	}
	if next := appendOne(); next != (protocol.Position{Epoch: purged.Epoch, Offset: 1}) {
		t.Fatalf("Append after a purge = %+v, want {%s 1}", next, purged.Epoch)
	}

	if err := js.DeleteStream(ctx, cfg.Stream); err != nil {
		t.Fatal(err)
	}
	next := appendOne()
	if next.Epoch == purged.Epoch || next.Offset != 1 {
		t.Fatalf("Append after the stream was deleted = %+v, want offset 1 in an epoch other than %s", next, purged.Epoch)
	}
	if got := top(); got != next {
		t.Fatalf("top after the stream came back = %+v, want %+v", got, next)
	}
	appendOne()
	deadline := time.After(10 * time.Second)
	for {
		other.mu.Lock()
		got, signal := append([]*protocol.Publication(nil), other.got["ch"]...), other.signal
		other.mu.Unlock()
		if len(got) == len(published) {
			for i, p := range got {
				if (protocol.Position{Epoch: p.Epoch, Offset: p.Offset}) != published[i] {
					t.Fatalf("the other node received %+v as #%d, want %+v", p, i, published[i])
				}
			}
			return
		}
		select {
		case <-signal:
		case <-deadline:
			t.Fatalf("the other node received %d publications, want %d", len(got), len(published))
		}
	}
}

// TestQuietChannelKeepsItsEpoch leaves two channels quiet for three history
// TTLs: the one a node has subscribers to keeps its epoch and offset (its
// publication expired: a client at offset 0 cannot recover it), the other
// starts a new epoch.
func TestQuietChannelKeepsItsEpoch(t *testing.T) {
	const ttl = time.Second
	srv := startServer(t)
	cfg := namespace(srv.URL())
	cfg.HistoryTTL = ttl
	pub, sub := newNode(t, cfg), newNode(t, cfg)
	ctx := context.Background()
	if err := sub.be.Broker().Subscribe(ctx, "quiet"); err != nil {
		t.Fatal(err)
	}
	first, err := pub.publish(ctx, "quiet", `1`)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := pub.publish(ctx, "alone", `1`)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * ttl) // the time that passes is what is tested

	h := pub.be.History()
	res, err := h.Read(ctx, "quiet", backend.Query{Since: &protocol.Position{Epoch: first.Epoch}, Limit: backend.NoLimit})
	if err != nil {
		t.Fatal(err)
	}
	if res.Top != first || len(res.Publications) != 0 {
		t.Fatalf("quiet channel with a subscriber: top %+v and %d publications, want top %+v and none (expired)", res.Top, len(res.Publications), first)
	}
	next, err := pub.publish(ctx, "quiet", `2`)
	if err != nil {
		t.Fatal(err)
	}
	if want := (protocol.Position{Epoch: first.Epoch, Offset: 2}); next != want {
		t.Fatalf("publication after the quiet time at %+v, want %+v", next, want)
	}
	res, err = h.Read(ctx, "quiet", backend.Query{Since: &protocol.Position{Epoch: first.Epoch}, Limit: backend.NoLimit})
	if err != nil || len(res.Publications) != 1 || res.Publications[0].Offset != 2 {
		t.Fatalf("Read after it: %+v, %v; want only offset 2", res, err)
	}
	sub.waitOffsets("quiet", 2)

	res, err = h.Read(ctx, "alone", backend.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Top.Epoch == alone.Epoch || res.Top.Offset != 0 {
		t.Fatalf("quiet channel without subscribers: top %+v, want offset 0 in an epoch other than %s", res.Top, alone.Epoch)
	}
}
