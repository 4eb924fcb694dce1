package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff returns a reconnect delay function: exponential backoff with full
// jitter. The delay before attempt n is uniform in [0, min(limit, base*2^n)),
// so that many clients cut off at once do not come back at once.
func Backoff(base, limit time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		ceil := base
		for i := 0; i < attempt && ceil < limit; i++ {
			ceil *= 2 // at most ~63 doublings before it passes limit
		}
		ceil = min(ceil, limit)
		if ceil <= 0 {
			return 0
		}
		return rand.N(ceil)
	}
}

// run keeps the client connected: it waits for cn to break, then reconnects
// after the delay, until the client is closed. cn is already installed.
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	attempt := 0
	for {
		if cn != nil {
			<-cn.done
			c.uninstall(cn)
			c.emit(Event{Type: Disconnected, Err: cn.err})
			if errors.Is(cn.err, ErrDisconnected) {
				c.log.Warn("server said not to reconnect", "err", cn.err)
				c.shutdown(cn.err)
				return
			}
			cn = nil
		}
		if !c.sleep(c.opts.ReconnectDelay(attempt)) {
			return
		}
		attempt++
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
		stop := context.AfterFunc(c.closeCtx, cancel)
		next, err := c.connect(ctx)
		stop()
		cancel()
		if err != nil {
			if c.closeCtx.Err() != nil {
				return
			}
			c.log.Info("reconnect failed", "attempt", attempt, "err", err)
			continue
		}
		if !c.install(next) {
			next.abort(ErrClosed)
			<-next.done
			return
		}
		attempt = 0
		cn = next
	}
}

// sleep waits d, or returns false at once when the client is closed.
func (c *Client) sleep(d time.Duration) bool {
	if c.closeCtx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.closeCtx.Done():
		return false
	}
}
