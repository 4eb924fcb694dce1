package tether_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
)

// TestShutdownLeavesNoGoroutines: after Shutdown, none of the node's goroutines
// (event loop, pools, heartbeats, dispatchers) are left.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	n, err := tether.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c := dial(t, n)
		c.subscribe("leak")
		if _, err := n.Publish("leak", []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		if m := c.read(); m.Op != protocol.PushPub {
			t.Fatalf("got %+v, want a pub", m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var ours []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "tether") || strings.Contains(g, "nbio") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("%d goroutines, %d before; ours:\n%s", runtime.NumGoroutine(), before, strings.Join(ours, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
