package nats_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/memory"
	tnats "github.com/tetherhq/tether/backend/nats"
	"github.com/tetherhq/tether/protocol"
)

// benchNodes opens nodes Backends on one file-storage server.
func benchNodes(b *testing.B, nodes int) []*node {
	srv := startServer(b)
	cfg := namespace(srv.URL())
	cfg.MemoryStorage, cfg.HistorySize = false, 100
	out := make([]*node, nodes)
	for i := range out {
		be, err := tnats.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = be.Close(context.Background()) })
		out[i] = &node{be: be}
	}
	return out
}

// BenchmarkPublishHot is Append then Publish on one channel, one at a time
// per node as the hub does, from 1 or 2 nodes.
func BenchmarkPublishHot(b *testing.B) {
	for _, nodes := range []int{1, 2} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			ns := benchNodes(b, nodes)
			var next atomic.Int64
			b.SetParallelism(1)
			b.RunParallel(func(pb *testing.PB) {
				n := ns[int(next.Add(1))%len(ns)]
				for pb.Next() {
					if _, err := n.publish(context.Background(), "hot", `{"x":1}`); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPublishSpread is Append then Publish over 1,000 channels from one
// node, many channels at once.
func BenchmarkPublishSpread(b *testing.B) {
	n := benchNodes(b, 1)[0]
	var next atomic.Int64
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ch := fmt.Sprint("ch", next.Add(1)%1000)
			p := &protocol.Publication{Channel: ch, Data: json.RawMessage(`{"x":1}`)}
			if _, err := n.be.History().Append(context.Background(), p); err != nil {
				b.Error(err)
				return
			}
			if err := n.be.Broker().Publish(context.Background(), p); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkJetStreamPublish is the baseline: a plain JetStream publish with
// its acknowledgement, no expected sequence, one at a time.
func BenchmarkJetStreamPublish(b *testing.B) {
	srv := startServer(b)
	nc, err := natsgo.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BASE", Subjects: []string{"base.>"}, MaxMsgsPerSubject: 100}); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	b.ResetTimer()
	for range b.N {
		mu.Lock()
		if _, err := js.Publish(ctx, "base.hot", []byte(`{"x":1}`)); err != nil {
			b.Fatal(err)
		}
		mu.Unlock()
	}
}

// BenchmarkPresenceJoinLeave is one Join and one Leave of a tab of one of
// 100 users, on a channel of 100 members, one at a time as a node's channel
// lock makes them: on NATS (file storage) and, as the baseline of the same
// run, on the memory store.
func BenchmarkPresenceJoinLeave(b *testing.B) {
	stores := map[string]func(b *testing.B) backend.PresenceTracker{
		"memory": func(b *testing.B) backend.PresenceTracker {
			p := memory.NewPresence(memory.PresenceConfig{})
			b.Cleanup(func() { _ = p.Close(context.Background()) })
			return p
		},
		"nats": func(b *testing.B) backend.PresenceTracker { return benchNodes(b, 1)[0].be.Presence() },
	}
	for _, name := range []string{"memory", "nats"} {
		b.Run(name, func(b *testing.B) {
			tr := stores[name](b)
			ctx := context.Background()
			for i := range 100 {
				if _, err := tr.Join(ctx, "room", backend.Member{Client: fmt.Sprint("m", i), User: fmt.Sprint("u", i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				client := fmt.Sprint("tab", i)
				if _, err := tr.Join(ctx, "room", backend.Member{Client: client, User: fmt.Sprint("u", i%100)}); err != nil {
					b.Fatal(err)
				}
				if _, err := tr.Leave(ctx, "room", client); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPresenceRefresh is one Refresh of a batch of 1,000 members of
// 1,000 distinct users (the node's batch), on NATS (file storage).
func BenchmarkPresenceRefresh(b *testing.B) {
	p := benchNodes(b, 1)[0].be.Presence()
	ctx := context.Background()
	clients := make([]string, 1000)
	for i := range clients {
		clients[i] = fmt.Sprint("c", i)
		if _, err := p.Join(ctx, "room", backend.Member{Client: clients[i], User: fmt.Sprint("u", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if err := p.Refresh(ctx, "room", clients); err != nil {
			b.Fatal(err)
		}
	}
}
