package wsconn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// conn is one upgraded connection. Outbound bytes bypass nbws's writer: frames
// are built by the caller (once per batch, for all subscribers) and written to
// the socket as they are; the socket's own buffer holds what the kernel cannot
// take yet, and queued counts it against MaxOutbound.
type conn struct {
	srv      *Server
	ws       *nbws.Conn
	nb       net.Conn // the socket under ws; its Write is safe for concurrent use
	sess     *session.Session
	wmu      sync.Mutex   // orders data writes with the close frame
	queued   atomic.Int64 // bytes handed to nb and not yet written to the kernel
	lastSeen atomic.Int64 // unix nanoseconds of the last frame from the peer
	closing  atomic.Bool  // a close frame was sent or received
	rejected atomic.Bool  // the parser refused a frame: ignore further input
	ready    atomic.Bool  // set once the upgrading goroutine has filled in c
	code     atomic.Int32 // the close code sent or received, for the log
	gone     atomic.Bool  // closed() ran
	shard    uint8
}

var _ session.Conn = (*conn)(nil)

func (c *conn) Format() wire.Format { return wire.WebSocket }

// Write queues frames for the peer.
func (c *conn) Write(b []byte) error {
	c.wmu.Lock() // so that nothing lands after the close frame
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return net.ErrClosed
	}
	n := int64(len(b))
	if c.queued.Add(n) > int64(c.srv.cfg.MaxOutbound) {
		c.queued.Add(-n)
		return session.ErrSlowConsumer
	}
	_, err := c.nb.Write(b)
	return err
}

// writeControl writes a ping or pong frame. Past the outbound limit the
// connection is closed as a slow consumer instead: a client that pings without
// reading would otherwise grow its buffer without bound.
func (c *conn) writeControl(opcode byte, payload []byte) {
	if err := c.Write(wire.AppendWebSocketFrame(make([]byte, 0, len(payload)+2), opcode, payload)); err == session.ErrSlowConsumer {
		c.srv.cfg.Sessions.Stats().SlowConsumers.Add(1)
		c.Close(protocol.DisconnectSlowConsumer)
	}
}

func (c *conn) echo(mt nbws.MessageType, data []byte) {
	if err := c.Write(wire.AppendWebSocketFrame(make([]byte, 0, len(data)+10), byte(mt), data)); err == session.ErrSlowConsumer {
		c.srv.cfg.Sessions.Stats().SlowConsumers.Add(1)
		c.Close(protocol.DisconnectSlowConsumer)
	}
}

// Close sends d as a disconnect push and a close frame with its code, then waits
// CloseTimeout for the client's close frame before dropping the connection.
func (c *conn) Close(d protocol.Disconnect) {
	if c.sess == nil { // echo: no protocol, no push
		c.closeCode(d.Code, d.Reason)
		return
	}
	push, _ := json.Marshal(&d)
	b := wire.AppendWebSocketFrame(nil, 0x1, push)
	b = appendCloseFrame(b, d.Code, d.Reason)
	c.wmu.Lock()
	if !c.closing.CompareAndSwap(false, true) {
		c.wmu.Unlock()
		return
	}
	c.code.Store(int32(d.Code))
	c.queued.Add(int64(len(b)))
	_, err := c.nb.Write(b)
	c.wmu.Unlock()
	if err != nil {
		_ = c.nb.Close()
		return
	}
	c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// closeCode closes with a bare close frame (no disconnect push): for protocol
// violations at the WebSocket level.
func (c *conn) closeCode(code int, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.code.Store(int32(code))
	_, _ = c.nb.Write(appendCloseFrame(nil, code, reason))
	c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// peerClosed handles the client's close frame: echo it unless we started the
// close, then drop the connection.
func (c *conn) peerClosed(code int) {
	c.wmu.Lock()
	if c.closing.CompareAndSwap(false, true) {
		c.code.Store(int32(code))
		if code == 1005 || code == 1006 || code == 1015 {
			code = protocol.CloseNormal
		}
		_, _ = c.nb.Write(appendCloseFrame(nil, code, ""))
	}
	c.wmu.Unlock()
	_ = c.nb.Close()
}

func appendCloseFrame(dst []byte, code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	payload = append(payload, reason...)
	return wire.AppendWebSocketFrame(dst, 0x8, payload)
}

// OnData is the engine's data handler; install it with Engine.OnData. It feeds
// the bytes of upgraded plaintext connections to their frame parser and hands
// every other connection's to its own handler (nbhttp's HTTP or TLS parser). A
// frame the parser rejects closes the connection with 1002, or 1009 when too
// large (written by the parser itself); bytes after that are dropped until the
// close completes, so that the client sees the close frame rather than a reset.
// Installed at the engine rather than per connection, it also covers bytes that
// arrive while the upgrading goroutine is still setting the connection up.
func OnData(nc *nbio.Conn, data []byte) {
	ws, ok := nc.Session().(*nbws.Conn)
	if !ok || plainSocket(ws.Conn) != nc {
		nc.DataHandler()(nc, data)
		return
	}
	c, _ := ws.Session().(*conn)
	if c != nil && !c.ready.Load() {
		c = nil
	}
	if c != nil && c.rejected.Load() {
		return
	}
	err := ws.Parse(data)
	if err == nil {
		return
	}
	tooLarge := errors.Is(err, nbws.ErrMessageTooLarge) || errors.Is(err, nbws.ErrControlMessageTooBig)
	if c == nil { // still upgrading: no conn to linger with
		if !tooLarge {
			_, _ = nc.Write(appendCloseFrame(nil, protocol.CloseProtocolError, "malformed frame"))
		}
		_ = nc.Close()
		return
	}
	c.rejected.Store(true)
	if tooLarge {
		c.closing.Store(true) // the parser wrote the 1009 close frame
		c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
		return
	}
	c.closeCode(protocol.CloseProtocolError, "malformed frame")
}

func (c *conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// LastSeen implements heartbeat.Peer.
func (c *conn) LastSeen() time.Time { return time.Unix(0, c.lastSeen.Load()) }

// Ping implements heartbeat.Peer.
func (c *conn) Ping() { c.writeControl(0x9, nil) }

// Expire implements heartbeat.Peer.
func (c *conn) Expire() {
	c.srv.cfg.Sessions.Stats().HeartbeatTimeouts.Add(1)
	if c.sess != nil {
		c.sess.Disconnect(protocol.DisconnectHeartbeatTimeout)
		return
	}
	c.Close(protocol.DisconnectHeartbeatTimeout)
}
