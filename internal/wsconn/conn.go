package wsconn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/llib/std/crypto/tls"
	"github.com/lesismal/nbio"

	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// state is where a connection is in its life. It only moves forward:
// new -> open -> closing -> closed, or straight to closed.
type state uint8

const (
	stateNew     state = iota // being set up by the upgrading goroutine
	stateOpen                 // messages flow both ways
	stateClosing              // a close frame was sent or received: no more data either way
	stateClosed               // the socket is gone and the connection released
)

// closeReason says why a connection ended.
type closeReason uint8

// The reasons a connection ends.
const (
	reasonNone       closeReason = iota // still open
	reasonPeer                          // the client sent a close frame
	reasonProtocol                      // the client broke RFC 6455: closed with 1002, 1007 or 1009
	reasonDisconnect                    // tether ended it: shutdown, slow consumer, heartbeat, API
	reasonDropped                       // the socket ended without a closing handshake
)

func (r closeReason) String() string {
	switch r {
	case reasonNone:
		return "none"
	case reasonPeer:
		return "peer"
	case reasonProtocol:
		return "protocol error"
	case reasonDisconnect:
		return "disconnect"
	case reasonDropped:
		return "dropped"
	}
	return "unknown"
}

// life is a connection's state, close reason and close code in one word, so
// that they change together and the first close wins all three.
type life uint32

func makeLife(s state, r closeReason, code int) life {
	return life(s) | life(r)<<8 | life(uint16(code))<<16
}

func (l life) state() state        { return state(l & 0xff) }
func (l life) reason() closeReason { return closeReason(l >> 8 & 0xff) }
func (l life) code() int           { return int(l >> 16) }

// conn is one upgraded connection. Outbound bytes are frames built by the
// caller (once per batch, for every subscriber, by the hub) and written to the
// socket as they are; the socket's own buffer holds what the kernel cannot take
// yet, and queued counts it against MaxOutbound. Inbound bytes go through rd.
//
// Lock order: wmu, then nbio's locks inside Write. life changes from open to
// closing only under wmu, so nothing is written after the close frame.
type conn struct {
	srv      *Server
	nb       net.Conn         // frames are written here: the socket, or the TLS conn over it; safe for concurrent use
	sess     *session.Session // nil on the echo endpoint
	rd       reader           // used by the goroutine reading the socket only
	queued   atomic.Int64     // bytes handed to nb and not yet written to the kernel
	lastSeen atomic.Int64     // unix nanoseconds of the last bytes from the peer
	wmu      sync.Mutex       // orders writes, and the close frame after them
	life     atomic.Uint32    // a life
	deflate  bool             // permessage-deflate was negotiated
}

// socket returns the event loop's socket under c, or nil when a goroutine of
// its own reads c.
func (c *conn) socket() *nbio.Conn {
	switch nc := c.nb.(type) {
	case *nbio.Conn:
		return nc
	case *tls.Conn:
		sock, _ := nc.Conn().(*nbio.Conn)
		return sock
	}
	return nil
}

var _ session.Conn = (*conn)(nil)

// load returns c's life. It is also what orders, for the race detector, the
// poller's reads of c after the upgrading goroutine's writes: nbio hands the
// connection over through epoll, which the detector cannot see.
func (c *conn) load() life { return life(c.life.Load()) }

// startClose moves c from new or open to closing, with reason and code. It
// returns false when c was already closing or closed. Call it under wmu.
func (c *conn) startClose(r closeReason, code int) bool {
	for {
		l := c.load()
		if l.state() >= stateClosing {
			return false
		}
		if c.life.CompareAndSwap(uint32(l), uint32(makeLife(stateClosing, r, code))) {
			return true
		}
	}
}

// finish moves c to closed, keeping its reason (reasonDropped when it had
// none). It returns false when c was already closed.
func (c *conn) finish() bool {
	for {
		l := c.load()
		if l.state() == stateClosed {
			return false
		}
		r, code := l.reason(), l.code()
		if r == reasonNone {
			r, code = reasonDropped, 1006
		}
		if c.life.CompareAndSwap(uint32(l), uint32(makeLife(stateClosed, r, code))) {
			return true
		}
	}
}

// Format implements session.Conn.
func (c *conn) Format() wire.Format {
	if c.deflate {
		return wire.WebSocketDeflate
	}
	return wire.WebSocket
}

// Write queues frames for the peer.
func (c *conn) Write(b []byte) error {
	c.wmu.Lock() // so that nothing lands after the close frame
	defer c.wmu.Unlock()
	if c.load().state() != stateOpen {
		return net.ErrClosed
	}
	n := int64(len(b))
	if c.queued.Add(n) > int64(c.srv.cfg.MaxOutbound) {
		c.queued.Add(-n)
		return session.ErrSlowConsumer
	}
	return c.send(b)
}

// blockingWriteTimeout bounds a write to a connection read by a goroutine of
// its own (net/http's TLS): its writes block, and one that cannot finish in
// this time is a client that does not read.
const blockingWriteTimeout = 10 * time.Second

// send writes b to the socket. Call it under wmu, with b counted in queued:
// the event loop's socket takes what the kernel cannot yet and reports it
// written later (OnWrittenSize); a blocking one has written it, or failed, on
// return, and a write that times out is a slow consumer's.
func (c *conn) send(b []byte) error {
	if c.socket() != nil {
		_, err := c.nb.Write(b)
		return err
	}
	_ = c.nb.SetWriteDeadline(time.Now().Add(blockingWriteTimeout))
	_, err := c.nb.Write(b)
	c.queued.Add(-int64(len(b)))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return session.ErrSlowConsumer
	}
	return err
}

// write writes b, and closes c as a slow consumer when it is past its
// outbound limit: a client that sends without reading (pings, echoes) would
// otherwise grow its buffer without bound.
func (c *conn) write(b []byte) {
	if err := c.Write(b); errors.Is(err, session.ErrSlowConsumer) {
		c.srv.cfg.Sessions.Stats().SlowConsumers.Add(1)
		c.Close(protocol.DisconnectSlowConsumer)
	}
}

// Close sends d as a disconnect push (on the protocol endpoint) and a close
// frame with its code, then waits CloseTimeout for the client's close frame
// before dropping the connection.
func (c *conn) Close(d protocol.Disconnect) {
	var b []byte
	if c.sess != nil {
		push, _ := json.Marshal(&d)
		b = wire.AppendWebSocketFrame(b, opText, push)
	}
	c.closeWith(reasonDisconnect, d.Code, appendCloseFrame(b, d.Code, d.Reason))
}

// fail closes c after the client broke the protocol: a close frame with the
// code, no disconnect push. When the refused frame was the client's own close
// frame, no answer will come: the socket is closed at once.
func (c *conn) fail(e *closeError) {
	c.closeWith(reasonProtocol, e.code, appendCloseFrame(nil, e.code, e.reason))
	if e.final {
		_ = c.nb.Close()
	}
}

// closeWith writes frames, which end with a close frame, unless c is already
// closing, and drops the socket after CloseTimeout unless the client answers
// first.
func (c *conn) closeWith(r closeReason, code int, frames []byte) {
	c.wmu.Lock()
	if !c.startClose(r, code) {
		c.wmu.Unlock()
		return
	}
	c.queued.Add(int64(len(frames)))
	err := c.send(frames)
	c.wmu.Unlock()
	if err != nil {
		_ = c.nb.Close()
		return
	}
	c.srv.cfg.Engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// peerClosed handles the client's close frame: answer it unless we started the
// close, then drop the connection.
func (c *conn) peerClosed(code int) {
	c.wmu.Lock()
	if c.startClose(reasonPeer, code) {
		if code == 1005 { // no status: answer with a normal close
			code = protocol.CloseNormal
		}
		frame := appendCloseFrame(nil, code, "")
		c.queued.Add(int64(len(frame)))
		_ = c.send(frame)
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
	return wire.AppendWebSocketFrame(dst, opClose, payload)
}

// Parse takes bytes the client sent; it implements nbhttp.ParserCloser, as the
// socket's session. A violation of the protocol closes the connection with
// its code; Parse itself never fails, so that nbio does not drop the socket
// before the close frame is out.
func (c *conn) Parse(data []byte) error {
	if c.load().state() == stateClosed {
		return nil
	}
	c.touch()
	if err := c.rd.feed(data, c); err != nil {
		var ce *closeError
		if errors.As(err, &ce) {
			c.fail(ce)
		}
	}
	return nil
}

// CloseAndClean implements nbhttp.ParserCloser: the engine calls it when the
// socket has closed.
func (c *conn) CloseAndClean(error) { c.srv.closed(c) }

// UnderlayerConn implements nbhttp.ParserCloser.
func (c *conn) UnderlayerConn() net.Conn { return c.nb }

// message implements frameHandler: the echo endpoint answers on the spot,
// and a command is handled on the spot too, on the goroutine reading the
// socket (nbio's poller), as the TCP transport does: a session does not block
// (package session's contract), and a hop to another goroutine per message
// would cost more than most commands.
func (c *conn) message(op byte, payload []byte, _ bool) {
	if c.load().state() != stateOpen {
		return // closing: data is discarded
	}
	c.srv.bytesIn.Add(int64(len(payload)))
	if c.sess == nil {
		c.writeFrame(op, payload, c.deflate)
		return
	}
	c.sess.Handle(payload)
}

// scratch holds buffers for the frames written once and forgotten (echoes,
// pongs, pings): the socket has copied what it could not send by the time
// Write returns.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeFrame writes payload as one frame with opcode op, compressed when
// compress is set and the message is worth it.
func (c *conn) writeFrame(op byte, payload []byte, compress bool) {
	bp := scratch.Get().(*[]byte)
	b := (*bp)[:0]
	if compress {
		b = c.srv.cfg.Compression.AppendFrame(b, op, payload)
	} else {
		b = wire.AppendWebSocketFrame(b, op, payload)
	}
	c.write(b)
	if cap(b) <= 64<<10 { // an outsized echo's buffer is left to the GC
		*bp = b[:0]
		scratch.Put(bp)
	}
}

// ping implements frameHandler.
func (c *conn) ping(payload []byte) {
	c.writeFrame(opPong, payload, false)
}

// pong implements frameHandler; Parse has noted that the client is alive.
func (c *conn) pong() {}

// peerClose implements frameHandler.
func (c *conn) peerClose(code int) { c.peerClosed(code) }

func (c *conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// LastSeen implements heartbeat.Peer.
func (c *conn) LastSeen() time.Time { return time.Unix(0, c.lastSeen.Load()) }

// Ping implements heartbeat.Peer.
func (c *conn) Ping() { c.writeFrame(opPing, nil, false) }

// Expire implements heartbeat.Peer.
func (c *conn) Expire() {
	c.srv.cfg.Sessions.Stats().HeartbeatTimeouts.Add(1)
	if c.sess != nil {
		c.sess.Disconnect(protocol.DisconnectHeartbeatTimeout)
		return
	}
	c.Close(protocol.DisconnectHeartbeatTimeout)
}
