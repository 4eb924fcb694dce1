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
	const conns, dialers, dialTries = 120, 8, 5
	clients := make([]*client, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for d := range dialers { // at once: upgrades race with the accept goroutine
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := d; i < conns; i += dialers {
				// A loaded machine may take longer than HandshakeTimeout
				// to serve an upgrade, which the server then rightly cuts:
				// that connection never opened, and is dialled again.
				for try := 1; try <= dialTries; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					c, _, err := websocket.Dial(ctx, tethertest.WSURL(n, "/ws"), nil)
					cancel()
					errs[i] = err
					if err == nil {
						t.Cleanup(func() { c.CloseNow() })
						clients[i] = &client{c: c}
						break
					}
					t.Logf("connection %d, dial %d: %v", i, try, err)
				}
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
