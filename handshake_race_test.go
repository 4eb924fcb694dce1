package tether_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestUpgradeOutlivesHandshakeTimeout: a WebSocket connection is not cut at
// the handshake timeout, however its upgrade raced with nbhttp's accept
// goroutine setting that deadline.
func TestUpgradeOutlivesHandshakeTimeout(t *testing.T) {
	cfg := tethertest.Config()
	cfg.HandshakeTimeout = 300 * time.Millisecond
	n := tethertest.NewNode(t, cfg)
	const conns, dialers = 120, 8
	clients := make([]*client, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for d := range dialers { // at once: upgrades race with the accept goroutine
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := d; i < conns; i += dialers {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, _, err := websocket.Dial(ctx, tethertest.WSURL(n, "/ws"), nil)
				cancel()
				if err == nil {
					t.Cleanup(func() { c.CloseNow() })
					clients[i] = &client{c: c}
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	time.Sleep(3 * cfg.HandshakeTimeout) // every stray deadline has fired by now
	for i, c := range clients {
		if c == nil {
			t.Fatalf("connection %d did not open: %v", i, errs[i])
		}
		c.t = t
		if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("connection %d: ping: %v", i, m.Error)
		}
	}
}
