package nats_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tetherhq/tether/protocol"
)

// subscriptionCost reports the memory and goroutines 10,000 channels of
// interest cost a node, and how long subscribing to them took.
func BenchmarkSubscriptions10k(b *testing.B) {
	const channels = 10_000
	for range b.N {
		srv := startServer(b)
		cfg := namespace(srv.URL())
		be := open(b, cfg)
		if err := be.Broker().Register(func(*protocol.Publication) {}); err != nil {
			b.Fatal(err)
		}
		g0, m0 := snapshot()
		start := time.Now()
		ctx := context.Background()
		for i := range channels {
			if err := be.Broker().Subscribe(ctx, fmt.Sprint("ch", i)); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		g1, m1 := snapshot()
		b.ReportMetric(float64(m1-m0)/channels, "B/channel")
		b.ReportMetric(float64(g1-g0)/channels, "goroutines/channel")
		b.ReportMetric(float64(took.Microseconds())/channels, "µs/subscribe")
	}
}

// BenchmarkChanSubscriptions10k is the alternative measured beside it: one
// nats.go subscription per channel delivering into one shared Go channel
// (no goroutine per subscription).
func BenchmarkChanSubscriptions10k(b *testing.B) {
	const channels = 10_000
	for range b.N {
		srv := startServer(b)
		nc, err := natsgo.Connect(srv.URL())
		if err != nil {
			b.Fatal(err)
		}
		shared := make(chan *natsgo.Msg, 1024)
		g0, m0 := snapshot()
		subs := make([]*natsgo.Subscription, channels)
		for i := range subs {
			if subs[i], err = nc.ChanSubscribe(fmt.Sprint("x.b.ch", i), shared); err != nil {
				b.Fatal(err)
			}
		}
		if err := nc.Flush(); err != nil {
			b.Fatal(err)
		}
		g1, m1 := snapshot()
		b.ReportMetric(float64(m1-m0)/channels, "B/channel")
		b.ReportMetric(float64(g1-g0)/channels, "goroutines/channel")
		runtime.KeepAlive(subs)
		nc.Close()
	}
}

func snapshot() (goroutines int, bytes uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse + ms.StackInuse
}
