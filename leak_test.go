package tether_test

import (
	"context"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestShutdownLeavesNoGoroutines: after Shutdown, none of the node's goroutines
// (event loop, pools, heartbeats, dispatchers) are left.
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	checkGoroutines(t) // its check runs last, after Shutdown and the clients' cleanups
	n, err := tether.New(tethertest.Config())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c := dial(t, n)
		c.subscribe("leak")
		if _, err := n.Publish(context.Background(), "leak", []byte(`1`)); err != nil {
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
}
