package tether_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

// BenchmarkAPIPublish publishes through the HTTP API (POST /api/publish,
// keep-alive connections, 16 publishers at once) to one hot channel and over
// 1,000 channels, on a node with the memory backends (the baseline) and on
// one with NATS (an in-process server with JetStream on disk, as --nats
// embedded). ns/op is the time per publication of the whole node: 1e9/ns/op
// publications per second; cpu-µs/op the CPU time of the process per
// publication (the node, the NATS server and the publishers together), which
// the other work on a shared machine moves less.
func BenchmarkAPIPublish(b *testing.B) {
	for _, backend := range []string{"memory", "nats"} {
		for _, channels := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/channels=%d", backend, channels), func(b *testing.B) {
				cfg := tethertest.Config()
				cfg.HistorySize = 100
				cfg.CommandRate = -1
				if backend == "nats" {
					cfg = natsConfig(startNATS(b, b.TempDir(), 0).URL())
					cfg.HistorySize = 100
				}
				n := tethertest.NewNode(b, cfg)
				benchPublish(b, n, channels)
			})
		}
	}
}

func benchPublish(b *testing.B, n *tether.Node, channels int) {
	url := tethertest.HTTPURL(n, "/api/publish")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(client.CloseIdleConnections)
	var next atomic.Int64
	b.SetParallelism(8)
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"channel":"ch%d","data":{"x":1}}`, next.Add(1)%int64(channels))
			resp, err := client.Post(url, "application/json", bytes.NewBufferString(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("publish: %s", resp.Status)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
