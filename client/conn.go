package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether/protocol"
)

// conn is one WebSocket connection to the server and its reader goroutine.
// It lives until the connection breaks; the client then makes a new one.
type conn struct {
	c      *Client
	ws     *websocket.Conn
	ctx    context.Context // the connection's lifetime: writes and reads use it
	cancel context.CancelFunc
	done   chan struct{} // closed when the reader has stopped
	err    error         // why it stopped; set before done is closed
	id     string        // client id from the connect result

	mu       sync.Mutex
	pending  map[uint64]*call
	broken   error // set once by abort
	watchdog *time.Timer
	silence  time.Duration // ping interval + PingTimeout; 0: no watchdog
	refresh  *time.Timer   // the next token refresh; nil: none
}

// call is a command waiting for its reply.
type call struct {
	ch chan *frame // gets the reply; buffered
	// onReply, when set, runs on the reader goroutine with the reply before it
	// is handed over, in order with the pushes around it.
	onReply func(*conn, *frame)
}

// frame is anything the server sends: a reply (ID set) or a push (Op set).
type frame struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`

	Op        string               `json:"op"`
	Channel   string               `json:"channel"`
	Epoch     string               `json:"epoch"`
	Offset    uint64               `json:"offset"`
	Data      json.RawMessage      `json:"data"`
	From      *protocol.ClientInfo `json:"from"`
	Code      int                  `json:"code"`
	Reason    string               `json:"reason"`
	Reconnect bool                 `json:"reconnect"`

	// The presence push's (presence.go).
	Join      []protocol.Member       `json:"join"`
	Leave     []protocol.Member       `json:"leave"`
	Joined    int                     `json:"joined"`
	Left      int                     `json:"left"`
	Occupancy *protocol.PresenceStats `json:"occupancy"`
}

// connect dials, starts the reader and runs the connect command. ctx bounds
// all of it; the connection itself outlives ctx.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	cn := &conn{c: c, ctx: life, cancel: cancel, done: make(chan struct{}), pending: make(map[uint64]*call)}
	// The handshake runs on the connection's own context, so that ending ctx
	// after the dial cannot reach the connection; ctx cancels it only meanwhile.
	stop := context.AfterFunc(ctx, cancel)
	ws, _, err := websocket.Dial(life, c.url, &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: c.opts.Header,
		OnPingReceived: func(context.Context, []byte) bool {
			cn.touch()
			return true
		},
	})
	if err != nil {
		stop()
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: dial %s: %w", c.url, ctx.Err())
		}
		return nil, fmt.Errorf("client: dial %s: %w", c.url, err)
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	cn.ws = ws
	c.wg.Add(1)
	go cn.read()

	token, err := c.token(ctx)
	var res json.RawMessage
	if err == nil {
		res, err = cn.call(ctx, &protocol.Command{Op: protocol.OpConnect, Token: token}, nil)
	}
	stop()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	var cr protocol.ConnectResult
	if err == nil {
		err = json.Unmarshal(res, &cr)
	}
	if err != nil {
		cn.abort(err)
		<-cn.done
		return nil, fmt.Errorf("client: connect to %s: %w", c.url, err)
	}
	cn.id = cr.Client
	cn.scheduleRefresh(cr.Expiry)
	if cr.Ping > 0 {
		cn.arm(time.Duration(cr.Ping)*time.Second + c.opts.PingTimeout)
	}
	return cn, nil
}

// arm starts the dead-connection watchdog: silence longer than d breaks the
// connection. Every frame from the server, pings included, restarts it.
func (cn *conn) arm(d time.Duration) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.broken != nil {
		return
	}
	cn.silence = d
	cn.watchdog = time.AfterFunc(d, func() {
		cn.abort(fmt.Errorf("%w: no frame from the server for %v", ErrConnectionLost, d))
	})
}

func (cn *conn) touch() {
	cn.mu.Lock()
	if cn.watchdog != nil && cn.broken == nil {
		cn.watchdog.Reset(cn.silence)
	}
	cn.mu.Unlock()
}

// abort breaks the connection at once (no close handshake). The reader then
// stops with err. Only the first call has an effect.
func (cn *conn) abort(err error) {
	cn.mu.Lock()
	if cn.broken != nil {
		cn.mu.Unlock()
		return
	}
	cn.broken = err
	cn.stopTimers()
	cn.mu.Unlock()
	cn.cancel()
	if cn.ws != nil {
		_ = cn.ws.CloseNow()
	}
}

// closeClean starts a close handshake; the reader stops when it completes.
func (cn *conn) closeClean(err error) {
	cn.mu.Lock()
	if cn.broken == nil {
		cn.broken = err
	}
	cn.mu.Unlock()
	// Close waits for the server's close frame, which the reader reads; a
	// server that does not answer is cut off.
	t := time.AfterFunc(2*time.Second, func() { cn.cancel(); _ = cn.ws.CloseNow() })
	go func() {
		_ = cn.ws.Close(websocket.StatusNormalClosure, "")
		t.Stop()
		cn.cancel()
	}()
}

// read reads frames until the connection breaks, then fails pending calls.
func (cn *conn) read() {
	defer cn.c.wg.Done()
	var err error
	for {
		var typ websocket.MessageType
		var b []byte
		typ, b, err = cn.ws.Read(cn.ctx)
		if err != nil {
			break
		}
		cn.touch()
		if typ != websocket.MessageText {
			continue
		}
		var f frame
		if jerr := json.Unmarshal(b, &f); jerr != nil {
			cn.c.log.Warn("malformed frame from server", "err", jerr)
			continue
		}
		if derr := cn.handle(&f); derr != nil {
			err = derr
			break
		}
	}
	cn.mu.Lock()
	if cn.broken == nil {
		cn.broken = err
	}
	err = cn.broken
	cn.stopTimers()
	pending := cn.pending
	cn.pending = nil
	cn.mu.Unlock()
	cn.err = err
	cn.cancel()
	_ = cn.ws.CloseNow()
	for _, cl := range pending {
		close(cl.ch)
	}
	close(cn.done)
}

// handle dispatches one frame. It returns an error to stop the connection.
func (cn *conn) handle(f *frame) error {
	if f.ID != 0 {
		cn.mu.Lock()
		cl := cn.pending[f.ID]
		delete(cn.pending, f.ID)
		cn.mu.Unlock()
		if cl == nil {
			return nil // the caller gave up
		}
		if cl.onReply != nil {
			cl.onReply(cn, f)
		}
		cl.ch <- f
		return nil
	}
	switch f.Op {
	case protocol.PushPub:
		cn.c.deliver(cn, &protocol.Publication{
			Op: f.Op, Channel: f.Channel, Epoch: f.Epoch, Offset: f.Offset, Data: f.Data, From: f.From,
		})
	case protocol.PushPing:
		go func() { _ = cn.write(&protocol.Command{Op: protocol.OpPong}) }()
	case protocol.PushUnsubscribe:
		cn.c.serverUnsubscribed(f.Channel, f.Code, f.Reason)
	case protocol.PushPresence:
		cn.c.presencePush(cn, f)
	case protocol.PushDisconnect:
		d := fmt.Errorf("server closed the connection: %d %s", f.Code, f.Reason)
		if !f.Reconnect {
			d = fmt.Errorf("%w: %d %s", ErrDisconnected, f.Code, f.Reason)
		}
		cn.mu.Lock()
		if cn.broken == nil {
			cn.broken = d
		}
		cn.mu.Unlock()
	}
	return nil
}

// write sends cmd on the connection, bounded by WriteTimeout. A failed write
// breaks the connection: part of a frame may be out.
func (cn *conn) write(cmd *protocol.Command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", cmd.Op, err)
	}
	ctx, cancel := context.WithTimeout(cn.ctx, cn.c.opts.WriteTimeout)
	defer cancel()
	if err := cn.ws.Write(ctx, websocket.MessageText, b); err != nil {
		err = fmt.Errorf("%w: write: %w", ErrConnectionLost, err)
		cn.abort(err)
		return err
	}
	return nil
}

// send registers cl under a fresh id and writes cmd.
func (cn *conn) send(cmd *protocol.Command, cl *call) error {
	cmd.ID = cn.c.nextID.Add(1)
	cn.mu.Lock()
	if cn.pending == nil {
		cn.mu.Unlock()
		return fmt.Errorf("%w: %v", ErrConnectionLost, cn.brokenErr())
	}
	cn.pending[cmd.ID] = cl
	cn.mu.Unlock()
	if err := cn.write(cmd); err != nil {
		cn.forget(cmd.ID)
		return err
	}
	return nil
}

// post sends cmd without waiting for its reply, on a goroutine of its own.
func (cn *conn) post(cmd *protocol.Command) {
	go func() { _ = cn.send(cmd, &call{ch: make(chan *frame, 1)}) }()
}

func (cn *conn) brokenErr() error {
	if cn.broken != nil {
		return cn.broken
	}
	return errors.New("connection closed")
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	if cn.pending != nil {
		delete(cn.pending, id)
	}
	cn.mu.Unlock()
}

// call sends cmd and waits for its result. When ctx ends first it returns
// ctx's error and leaves the connection alone; onReply, if set, still runs
// when the reply comes.
func (cn *conn) call(ctx context.Context, cmd *protocol.Command, onReply func(*conn, *frame)) (json.RawMessage, error) {
	cl := &call{ch: make(chan *frame, 1), onReply: onReply}
	if err := cn.send(cmd, cl); err != nil {
		return nil, err
	}
	select {
	case f, ok := <-cl.ch:
		if !ok {
			if errors.Is(cn.err, ErrConnectionLost) {
				return nil, cn.err
			}
			return nil, fmt.Errorf("%w: %w", ErrConnectionLost, cn.err) // cn.err may be ErrClosed
		}
		if f.Error != nil {
			return nil, fmt.Errorf("client: %s: %w", cmd.Op, f.Error)
		}
		return f.Result, nil
	case <-ctx.Done():
		if onReply == nil {
			cn.forget(cmd.ID)
		}
		return nil, ctx.Err()
	}
}
