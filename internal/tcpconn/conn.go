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

	wmu      sync.Mutex   // orders writes: the limit check with its write, the final line after all others
	queued   atomic.Int64 // bytes handed to nb and not yet written to the kernel
	lastSeen atomic.Int64 // unix nanoseconds of the last bytes from the peer
	closing  atomic.Bool  // the final line is being written: ignore further input
	final    atomic.Bool  // the final line was handed to nb
	shut     atomic.Bool  // our side of the socket is shut down
	gone     atomic.Bool  // Server.closed ran
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
func (c *conn) Write(b []byte) error {
	// One writer at a time between the checks and the write, or concurrent
	// deliveries (pool workers, other channels, replies) could all pass the
	// limit, or land after the final line.
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing.Load() {
		return net.ErrClosed
	}
	if c.queued.Load()+int64(len(b)) > int64(c.srv.cfg.MaxOutbound) {
		return session.ErrSlowConsumer
	}
	_, err := c.out.Write(b)
	return err
}

// written accounts n bytes the engine wrote to the kernel.
func (c *conn) written(n int) {
	if c.queued.Add(-int64(n)) <= 0 && c.final.Load() {
		c.shutWrite()
	}
}

// Close implements session.Conn: it writes d as the final line, then shuts
// the socket down for writing once that line has left, so that the client
// reads it and then end of file; the connection is dropped CloseTimeout
// later, or when the client closes its side.
func (c *conn) Close(d protocol.Disconnect) {
	c.wmu.Lock()
	if !c.closing.CompareAndSwap(false, true) {
		c.wmu.Unlock()
		return
	}
	_, err := c.out.Write(appendDisconnect(nil, d))
	c.wmu.Unlock()
	if err != nil {
		_ = c.nb.Close()
		return
	}
	c.final.Store(true)
	if c.queued.Load() <= 0 {
		c.shutWrite()
	}
	c.srv.engine.AfterFunc(c.srv.cfg.CloseTimeout, func() { _ = c.nb.Close() })
}

// shutWrite half-closes the socket: the kernel sends what it holds, then FIN.
// Closing outright could reset the connection, losing the final line, when the
// client's unread input is still in our receive buffer.
func (c *conn) shutWrite() {
	if !c.shut.CompareAndSwap(false, true) {
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
	limit := c.srv.cfg.MaxLineLength
	for len(data) > 0 {
		if c.closing.Load() {
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
// limit does not stop.
func (c *conn) Ping() {
	if !c.closing.Load() {
		_, _ = c.out.Write(pingLine)
	}
}

// Expire implements heartbeat.Peer.
func (c *conn) Expire() {
	c.srv.cfg.Sessions.Stats().HeartbeatTimeouts.Add(1)
	c.sess.Disconnect(protocol.DisconnectHeartbeatTimeout)
}
