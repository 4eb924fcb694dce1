package client

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tetherhq/tether/protocol"
)

// Client is a connection to a tether server that survives breaks: it
// reconnects and resubscribes by itself. All its methods are safe for
// concurrent use.
type Client struct {
	url  string
	opts Options
	log  *slog.Logger

	closeCtx context.Context // done once Close ran
	closeNow context.CancelFunc
	wg       sync.WaitGroup // the run loop and the readers
	nextID   atomic.Uint64

	mu     sync.Mutex
	conn   *conn         // the live connection; nil between connections
	up     chan struct{} // closed when conn is set or the client is closed
	subs   map[string]*Subscription
	closed bool
	reason error // why the client stopped, once closed
}

// Dial connects to the tether WebSocket endpoint at url (ws://host/ws) and
// returns a client that stays connected until Close. The first connection must
// succeed within ctx (and Options.DialTimeout); after that, the client
// reconnects on its own.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	o := DefaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return dial(ctx, url, o)
}

func dial(ctx context.Context, url string, o Options) (*Client, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	c := &Client{url: url, opts: o, log: o.Logger, subs: make(map[string]*Subscription), up: make(chan struct{})}
	c.closeCtx, c.closeNow = context.WithCancel(context.Background())
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	cn, err := c.connect(dctx)
	if err != nil {
		c.closeNow()
		c.wg.Wait()
		return nil, err
	}
	c.install(cn)
	c.wg.Add(1)
	go c.run(cn)
	return c, nil
}

// install makes cn the live connection and resubscribes every subscription on
// it. It returns false when the client is closed.
func (c *Client) install(cn *conn) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.conn = cn
	close(c.up)
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	c.log.Info("connected", "url", c.url, "client", cn.id)
	c.emit(Event{Type: Connected, Client: cn.id})
	for _, s := range subs {
		s.subscribeOn(cn)
	}
	return true
}

// uninstall forgets cn, which broke.
func (c *Client) uninstall(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		if !c.closed {
			c.up = make(chan struct{})
		}
	}
	c.mu.Unlock()
	c.log.Info("disconnected", "url", c.url, "err", cn.err)
}

// live waits for a connection until ctx ends or the client is closed.
func (c *Client) live(ctx context.Context) (*conn, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		cn, up, closed, reason := c.conn, c.up, c.closed, c.reason
		c.mu.Unlock()
		if closed {
			return nil, reason
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Client) emit(e Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// Close closes the connection (with a close handshake when it is up), stops
// reconnecting and ends every subscription. It waits for the client's
// connection goroutines, not for handlers that are running. Calls waiting on
// the client return ErrClosed. Close is idempotent.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	c.wg.Wait()
	return nil
}

// shutdown marks the client closed with reason and stops its goroutines.
func (c *Client) shutdown(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.reason = reason
	cn := c.conn
	if cn == nil {
		close(c.up) // else it is closed already
	}
	subs := c.subs
	c.subs = map[string]*Subscription{}
	c.mu.Unlock()
	c.closeNow()
	if cn != nil {
		cn.closeClean(reason)
	}
	for _, s := range subs {
		s.stop(reason)
	}
}

// Publish publishes data, a JSON value, to channel and returns the position
// the server gave it. It waits for a connection when there is none. When the
// connection breaks before the reply, it returns ErrConnectionLost and the
// publication may or may not have been made.
func (c *Client) Publish(ctx context.Context, channel string, data json.RawMessage) (protocol.Position, error) {
	cn, err := c.live(ctx)
	if err != nil {
		return protocol.Position{}, fmt.Errorf("client: publish: %w", err)
	}
	res, err := cn.call(ctx, &protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: data}, nil)
	if err != nil {
		return protocol.Position{}, err
	}
	var pos protocol.Position
	if err := json.Unmarshal(res, &pos); err != nil {
		return protocol.Position{}, fmt.Errorf("client: publish: decode result: %w", err)
	}
	return pos, nil
}

// History returns up to limit publications of channel after since (oldest
// first; nil since or another epoch: from the oldest kept; limit 0: as many
// as the server keeps), and the channel's current position.
func (c *Client) History(ctx context.Context, channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	cn, err := c.live(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: history: %w", err)
	}
	res, err := cn.call(ctx, &protocol.Command{Op: protocol.OpHistory, Channel: channel, Since: since, Limit: limit}, nil)
	if err != nil {
		return nil, err
	}
	var h protocol.HistoryResult
	if err := json.Unmarshal(res, &h); err != nil {
		return nil, fmt.Errorf("client: history: decode result: %w", err)
	}
	return &h, nil
}

// deliver hands a pub push to its subscription.
func (c *Client) deliver(cn *conn, p *protocol.Publication) {
	c.mu.Lock()
	s := c.subs[p.Channel]
	c.mu.Unlock()
	if s != nil {
		s.apply(cn, p)
	}
}

// serverUnsubscribed ends the subscription to channel that the server
// ended (an unsubscribe push) and emits Unsubscribed.
func (c *Client) serverUnsubscribed(channel string, code int, reason string) {
	c.mu.Lock()
	s := c.subs[channel]
	c.mu.Unlock()
	if s == nil {
		return
	}
	err := fmt.Errorf("%w: unsubscribed by the server: %d %s", ErrUnsubscribed, code, reason)
	s.detach(err)
	c.emit(Event{Type: Unsubscribed, Channel: channel, Position: s.Position(), Err: err})
}
