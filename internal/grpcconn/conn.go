package grpcconn

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/internal/session"
	"github.com/tetherhq/tether/internal/wire"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// conn is one Connect stream. Sessions write newline-framed JSON (wire.Line):
// the sender turns each line into one ServerMessage.
type conn struct {
	srv  *Server
	sess *session.Session
	wake chan struct{} // signalled when queue grows; capacity 1

	closing chan struct{} // closed by Close
	dropped chan struct{} // closed by Drop

	mu     sync.Mutex
	queue  [][]byte            // chunks of lines, in order
	queued int                 // bytes in queue and in the sender's hands
	state  state               // only moves forward
	final  protocol.Disconnect // the close reason, set by Close
}

// state is where a stream is in its life.
type state uint8

const (
	stateOpen    state = iota
	stateClosing       // Close ran: the last chunk in queue is the final one
	stateDropped       // Drop ran: the handler returns without waiting for the sender
	stateEnded         // the handler returned: the stream is gone
)

var _ session.Conn = (*conn)(nil)

// Wire implements session.Conn.
func (c *conn) Format() wire.Format { return wire.Line }

// Write implements session.Conn: it queues b for the sender.
func (c *conn) Write(b []byte) error {
	c.mu.Lock()
	switch {
	case c.state != stateOpen:
		c.mu.Unlock()
		return net.ErrClosed
	case c.queued+len(b) > c.srv.cfg.MaxOutbound:
		c.mu.Unlock()
		return session.ErrSlowConsumer
	}
	c.queue = append(c.queue, b)
	c.queued += len(b)
	c.mu.Unlock()
	c.signal()
	return nil
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Close implements session.Conn and conns.Conn: it queues d as the final
// message and ends the stream once that is sent, or CloseTimeout later.
func (c *conn) Close(d protocol.Disconnect) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	c.final = d
	push, _ := json.Marshal(&d) // plain fields: cannot fail
	c.queue = append(c.queue, append(push, '\n'))
	c.mu.Unlock()
	c.signal()
	close(c.closing)
}

// Drop implements conns.Conn: the handler returns UNAVAILABLE at once, which
// ends the stream whatever the sender is waiting for.
func (c *conn) Drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state < stateDropped {
		c.state = stateDropped
		close(c.dropped)
	}
}

func (c *conn) markClosed() {
	c.mu.Lock()
	c.state = stateEnded
	c.queue = nil
	c.mu.Unlock()
}

// status is the status the stream ends with after the disconnect push:
// UNAVAILABLE when the client should reconnect, ABORTED when it should not.
func (c *conn) status() error {
	c.mu.Lock()
	d := c.final
	c.mu.Unlock()
	code := codes.Aborted
	if d.Reconnect {
		code = codes.Unavailable
	}
	return status.Error(code, fmt.Sprintf("disconnect %d: %s", d.Code, d.Reason))
}

// sendLoop sends queued lines until the final one is sent (it returns nil),
// sending fails (the error) or quit is closed.
func (c *conn) sendLoop(stream tetherv1.Tether_ConnectServer, quit <-chan struct{}) error {
	for {
		select {
		case <-c.wake:
		case <-quit:
			return nil
		}
		c.mu.Lock()
		chunks, final := c.queue, c.state == stateClosing
		c.queue = nil
		c.mu.Unlock()
		for _, chunk := range chunks {
			for line := range bytes.Lines(chunk) {
				msg := &tetherv1.ServerMessage{Json: bytes.TrimSuffix(line, []byte{'\n'})}
				if err := stream.Send(msg); err != nil {
					return fmt.Errorf("grpcconn: send: %w", err)
				}
				c.srv.bytesOut.Add(int64(len(msg.Json)))
			}
			c.mu.Lock()
			c.queued -= len(chunk)
			c.mu.Unlock()
		}
		if final {
			return nil
		}
	}
}

// recvLoop runs each received command until the stream ends.
func (c *conn) recvLoop(stream tetherv1.Tether_ConnectServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		c.srv.bytesIn.Add(int64(len(msg.GetJson())))
		c.sess.Handle(msg.GetJson())
	}
}
