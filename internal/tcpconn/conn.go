package tcpconn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// pingLine is the application-level ping the server sends on the heartbeat.
var pingLine = []byte(`{"op":"ping"}` + "\n")

// conn is one TCP connection. Inbound bytes arrive on the event loop, one
// callback at a time, so partial and the line state need no lock. Outbound
// bytes go straight to the socket (through TLS when configured); the socket's
// buffer holds what the kernel cannot take yet, and queued counts it against
// MaxOutbound.
type conn struct {
	srv  *Server
	nb   *nbio.Conn
	raw  countingConn // nb, counting the bytes written to it
	tls  *tls.Conn    // nil without TLS
	out  io.Writer    // tls or raw; safe for concurrent use
	sess *session.Session

	partial []byte // an incomplete line, waiting for its newline

	// wmu orders writes: each limit check with its write, and every line
	// (replies, pushes, pings) before the final one; until the TLS
	// handshake is complete it also keeps writes out of it (readTLS). Lock
	// order: wmu, then the locks of llib's tls.Conn and nbio inside
	// out.Write and AppendAndRead.
	wmu      sync.Mutex
	tlsReady atomic.Bool   // TLS: the handshake is complete (readTLS)
	queued   atomic.Int64  // bytes handed to nb and not yet written to the kernel
	lastSeen atomic.Int64  // unix nanoseconds of the last bytes from the peer
	state    atomic.Uint32 // a state; only moves forward
	code     atomic.Int32  // the close reason: the code of the final line, 0 when none was written
}

// state is where a connection is in its life. It only moves forward, one
// step at a time up to stateShut, and to stateGone from any state.
type state uint32

const (
	stateOpen    state = iota
	stateClosing       // the final line is being written: no more writes, input is dropped
	stateFinal         // the final line was handed to nb: shut the write side once it has left
	stateShut          // our side of the socket is shut down for writing
	stateGone          // Server.closed ran
)

func (c *conn) is(s state) bool { return state(c.state.Load()) == s }

// closing reports whether the connection has begun to close, or is gone.
func (c *conn) closing() bool { return state(c.state.Load()) >= stateClosing }

// advance moves the connection from one state to the next; it reports false
// when the connection was not in from.
func (c *conn) advance(from, to state) bool {
	return c.state.CompareAndSwap(uint32(from), uint32(to))
}

// end moves the connection to stateGone; it reports false when it was gone
// already.
func (c *conn) end() bool {
	for {
		s := c.state.Load()
		if state(s) == stateGone {
			return false
		}
		if c.state.CompareAndSwap(s, uint32(stateGone)) {
			return true
		}
	}
}

var _ session.Conn = (*conn)(nil)

// countingConn is the socket as TLS and the conn see it: every byte written
// through it counts in queued until the engine reports it written.
type countingConn struct {
	*nbio.Conn
	c *conn
}

func (cc countingConn) Write(b []byte) (int, error) {
	cc.c.queued.Add(int64(len(b)))
	n, err := cc.Conn.Write(b)
	if err != nil {
		cc.c.queued.Add(-int64(len(b)))
	}
	return n, err
}

// Wire implements session.Conn.
func (c *conn) Format() wire.Format { return wire.Line }

// Write implements session.Conn: it queues lines for the peer.
func (c *conn) Write(b []byte) error { return c.send(b, true) }

// send writes b unless the connection is closing. When limited, a write that
// would pass MaxOutbound is refused with ErrSlowConsumer. It holds wmu:
// concurrent writers (pool workers, other channels, replies, the heartbeat)
// could otherwise all pass the limit, or land after the final line.
func (c *conn) send(b []byte, limited bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing() {
		return net.ErrClosed
	}
	if limited && c.queued.Load()+int64(len(b)) > int64(c.srv.cfg.MaxOutbound) {
		return session.ErrSlowConsumer
	}
	_, err := c.out.Write(b)
	return err
}

// readTLS appends in to the TLS input and decrypts what it can into buf. Until
// the handshake is complete it holds wmu: llib's tls.Conn runs the handshake
// in Write as in AppendAndRead, under no lock of its own, so a line written
// meanwhile (a heartbeat ping, a disconnect) would run it concurrently.
func (c *conn) readTLS(in, buf []byte) (int, error) {
	if !c.tlsReady.Load() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
	}
	_, n, err := c.tls.AppendAndRead(in, buf)
	if err == nil && !c.tlsReady.Load() && c.tls.ConnectionState().HandshakeComplete {
		c.tlsReady.Store(true)
	}
	return n, err
}

// written accounts n bytes the engine wrote to the kernel.
func (c *conn) written(n int) {
	c.srv.bytesOut.Add(int64(n))
	if c.queued.Add(-int64(n)) <= 0 && c.is(stateFinal) {
		c.shutWrite()
	}
}

// Close implements session.Conn and conns.Conn: it writes d as the final
// line, then shuts the socket down for writing once that line has left, so
// that the client reads it and then end of file; the connection is dropped
// CloseTimeout later, or when the client closes its side.
func (c *conn) Close(d protocol.Disconnect) {
	ok, err := c.writeFinal(d)
	if !ok {
		return
	}
	if err != nil {
		_ = c.nb.Close()
		return
	}
	if c.advance(stateClosing, stateFinal) && c.queued.Load() <= 0 {
		c.shutWrite()
	}
	c.srv.engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// writeFinal writes d as the final line, after every line written before it
// and before none. It reports false when the connection was closing already.
func (c *conn) writeFinal(d protocol.Disconnect) (ok bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.advance(stateOpen, stateClosing) {
		return false, nil
	}
	c.code.Store(int32(d.Code))
	_, err = c.out.Write(appendDisconnect(nil, d))
	return true, err
}

// Drop implements conns.Conn: it closes the socket at once.
func (c *conn) Drop() { _ = c.nb.Close() }

// shutWrite half-closes the socket: the kernel sends what it holds, then FIN.
// Closing outright could reset the connection, losing the final line, when the
// client's unread input is still in our receive buffer.
func (c *conn) shutWrite() {
	if !c.advance(stateFinal, stateShut) {
		return
	}
	if err := shutdownWrite(c.nb); err != nil {
		_ = c.nb.Close()
	}
}

func appendDisconnect(dst []byte, d protocol.Disconnect) []byte {
	b, _ := json.Marshal(&d) // plain fields: cannot fail
	dst = append(dst, b...)
	return append(dst, '\n')
}

// feed splits data into lines and runs each as a command. Lines may be split
// across reads and a read may hold many lines.
func (c *conn) feed(data []byte) {
	c.touch()
	c.srv.bytesIn.Add(int64(len(data)))
	limit := c.srv.cfg.MaxLineLength
	for len(data) > 0 {
		if c.closing() {
			return // closing: drain and drop what the client still sends
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(c.partial)+len(data) > limit+1 { // +1: a '\r' before the newline
				c.tooLong()
				return
			}
			c.partial = append(c.partial, data...)
			return
		}
		line := data[:i]
		data = data[i+1:]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, line...)
			line = c.partial
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) > limit {
			c.tooLong()
			return
		}
		if len(bytes.TrimSpace(line)) > 0 { // blank lines are allowed, and ignored
			c.sess.Handle(line)
		}
		if cap(c.partial) > 4096 {
			c.partial = nil // do not keep a large buffer for an idle connection
		} else {
			c.partial = c.partial[:0]
		}
	}
}

func (c *conn) tooLong() {
	c.partial = nil
	c.Close(protocol.Disconnect{
		Op:     protocol.PushDisconnect,
		Code:   protocol.CloseTooBig,
		Reason: fmt.Sprintf("line longer than %d bytes", c.srv.cfg.MaxLineLength),
	})
}

func (c *conn) touch() { c.lastSeen.Store(time.Now().UnixNano()) }

// LastSeen implements heartbeat.Peer.
func (c *conn) LastSeen() time.Time { return time.Unix(0, c.lastSeen.Load()) }

// Ping implements heartbeat.Peer: it writes a ping line, which the outbound
// limit does not stop. Like every line it goes through wmu, so that it never
// follows the final line.
func (c *conn) Ping() { _ = c.send(pingLine, false) }

// Expire implements heartbeat.Peer.
func (c *conn) Expire() {
	c.srv.cfg.Sessions.Stats().HeartbeatTimeouts.Add(1)
	c.sess.Disconnect(protocol.DisconnectHeartbeatTimeout)
}
