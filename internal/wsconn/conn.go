package wsconn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/session"
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
	queued   atomic.Int64 // bytes handed to nb and not yet written to the kernel
	lastSeen atomic.Int64 // unix nanoseconds of the last frame from the peer
	closing  atomic.Bool  // a close frame was sent or received
	rejected atomic.Bool  // the parser refused a frame: ignore further input
	gone     atomic.Bool  // closed() ran
	// ready is set once the upgrade has filled in the fields above, before
	// onData is installed: loading it orders those writes before onData's
	// reads for the race detector, which cannot see nbio's handoff.
	ready atomic.Bool
	shard uint8
}

var _ session.Conn = (*conn)(nil)

func (c *conn) Wire() hub.Wire { return hub.WireWebSocket }

// Write queues frames for the peer.
func (c *conn) Write(b []byte) error {
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

// writeControl writes a control frame, which the outbound limit does not stop.
func (c *conn) writeControl(opcode byte, payload []byte) error {
	b := hub.AppendWebSocketFrame(make([]byte, 0, len(payload)+2), opcode, payload)
	c.queued.Add(int64(len(b)))
	_, err := c.nb.Write(b)
	return err
}

func (c *conn) echo(mt nbws.MessageType, data []byte) {
	if err := c.Write(hub.AppendWebSocketFrame(make([]byte, 0, len(data)+10), byte(mt), data)); err == session.ErrSlowConsumer {
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
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	push, _ := json.Marshal(&d)
	b := hub.AppendWebSocketFrame(nil, 0x1, push)
	b = appendCloseFrame(b, d.Code, d.Reason)
	c.queued.Add(int64(len(b)))
	if _, err := c.nb.Write(b); err != nil {
		_ = c.nb.Close()
		return
	}
	c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// closeCode closes with a bare close frame (no disconnect push): for protocol
// violations at the WebSocket level.
func (c *conn) closeCode(code int, reason string) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	_, _ = c.nb.Write(appendCloseFrame(nil, code, reason))
	c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// peerClosed handles the client's close frame: echo it unless we started the
// close, then drop the connection.
func (c *conn) peerClosed(code int) {
	if c.closing.CompareAndSwap(false, true) {
		if code == 1005 || code == 1006 || code == 1015 {
			code = protocol.CloseNormal
		}
		_, _ = c.nb.Write(appendCloseFrame(nil, code, ""))
	}
	_ = c.nb.Close()
}

func appendCloseFrame(dst []byte, code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	payload := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	payload = append(payload, reason...)
	return hub.AppendWebSocketFrame(dst, 0x8, payload)
}

// onData feeds socket bytes to the frame parser. A frame the parser rejects
// closes the connection with 1002, or 1009 when too large (written by the
// parser itself); bytes after that are read and dropped until the close
// completes, so that the client sees the close frame rather than a reset.
func (c *conn) onData(_ *nbio.Conn, data []byte) {
	if !c.ready.Load() || c.rejected.Load() {
		return
	}
	err := c.ws.Parse(data)
	if err == nil {
		return
	}
	c.rejected.Store(true)
	if errors.Is(err, nbws.ErrMessageTooLarge) || errors.Is(err, nbws.ErrControlMessageTooBig) {
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
func (c *conn) Ping() {
	if !c.closing.Load() {
		_ = c.writeControl(0x9, nil)
	}
}

// Expire implements heartbeat.Peer.
func (c *conn) Expire() {
	c.srv.cfg.Sessions.Stats().HeartbeatTimeouts.Add(1)
	if c.sess != nil {
		c.sess.Disconnect(protocol.DisconnectHeartbeatTimeout)
		return
	}
	c.Close(protocol.DisconnectHeartbeatTimeout)
}
