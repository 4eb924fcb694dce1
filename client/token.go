package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tetherhq/tether/protocol"
)

// token returns the token for a connect: TokenFunc's, or Token.
func (c *Client) token(ctx context.Context) (string, error) {
	if c.opts.TokenFunc == nil {
		return c.opts.Token, nil
	}
	tok, err := c.opts.TokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

// refreshLead is how long before an expiry the client refreshes: a fifth of
// the time left, at most a minute.
func refreshLead(left time.Duration) time.Duration { return min(time.Minute, left/5) }

// scheduleRefresh arms the refresh of the connection's token before e, when
// there is an expiry and a TokenFunc to get a fresh token from.
func (cn *conn) scheduleRefresh(e protocol.Expiry) {
	if e.Expires == 0 || cn.c.opts.TokenFunc == nil {
		return
	}
	at := time.Unix(e.Expires, 0)
	cn.armRefresh(at, time.Until(at)-refreshLead(time.Until(at)))
}

func (cn *conn) armRefresh(at time.Time, after time.Duration) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.broken != nil {
		return
	}
	if cn.refresh != nil {
		cn.refresh.Stop()
	}
	cn.refresh = time.AfterFunc(max(after, 0), func() { cn.doRefresh(at) })
}

// doRefresh gets a fresh token and sends refresh. A failure is tried again
// every few seconds until the expiry; past it the server's token_expired
// disconnect brings a reconnect, with a new token.
func (cn *conn) doRefresh(at time.Time) {
	ctx, cancel := context.WithTimeout(cn.ctx, cn.c.opts.DialTimeout)
	defer cancel()
	tok, err := cn.c.token(ctx)
	var res json.RawMessage
	if err == nil {
		res, err = cn.call(ctx, &protocol.Command{Op: protocol.OpRefresh, Token: tok}, nil)
	}
	var e protocol.Expiry
	if err == nil {
		err = json.Unmarshal(res, &e)
	}
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.Code == protocol.ErrUnknownOp {
		return // a server without expiry
	}
	if err != nil {
		left := time.Until(at)
		cn.c.log.Warn("token refresh failed", "err", err, "expires in", left.Round(time.Second))
		if left > time.Second {
			cn.armRefresh(at, min(5*time.Second, left/2))
		}
		return
	}
	cn.scheduleRefresh(e)
}

// stopTimers stops the watchdog and the refresh; cn.mu is held.
func (cn *conn) stopTimers() {
	if cn.watchdog != nil {
		cn.watchdog.Stop()
	}
	if cn.refresh != nil {
		cn.refresh.Stop()
	}
}
