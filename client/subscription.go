package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tetherhq/tether/protocol"
)

// Handler receives a subscription's publications, one at a time, in offset
// order, each once.
type Handler func(*protocol.Publication)

// Subscription is a client's subscription to one channel. It lasts across
// reconnects until Unsubscribe or the client's Close. Its methods are safe for
// concurrent use.
type Subscription struct {
	c       *Client
	channel string
	handler Handler
	out     chan<- *protocol.Publication

	done chan struct{} // closed by stop
	wake chan struct{} // a queue item is waiting; capacity 1

	mu       sync.Mutex
	pos      protocol.Position // of the last publication queued
	hasPos   bool              // pos is known: a subscribe reply came
	sentOn   *conn             // the connection the last subscribe went on
	live     *conn             // the connection whose subscribe reply was applied
	queue    []item
	stopped  bool
	err      error         // why it stopped
	ready    chan struct{} // closed at the first subscribe reply, or at stop
	readyErr error
	dups     int
}

// item is a publication or an event, queued for the handler goroutine.
type item struct {
	pub *protocol.Publication
	ev  *Event
}

// Subscribe subscribes to channel and calls h with each publication, on a
// goroutine of the subscription's own. It returns once the server has
// confirmed the subscription. Publications from then on reach h exactly once
// and in order, across reconnects, as long as the server's history covers
// the time spent disconnected (a Gap event says when it did not).
//
// When ctx ends before the server's confirmation, Subscribe returns ctx's
// error and undoes the subscription.
func (c *Client) Subscribe(ctx context.Context, channel string, h Handler) (*Subscription, error) {
	if h == nil {
		return nil, fmt.Errorf("client: subscribe %q: nil handler", channel)
	}
	return c.subscribe(ctx, channel, h, nil)
}

// SubscribeChan is Subscribe with publications sent to ch instead of a
// handler. The subscription's goroutine blocks on ch; it never closes ch.
func (c *Client) SubscribeChan(ctx context.Context, channel string, ch chan<- *protocol.Publication) (*Subscription, error) {
	if ch == nil {
		return nil, fmt.Errorf("client: subscribe %q: nil channel", channel)
	}
	return c.subscribe(ctx, channel, nil, ch)
}

func (c *Client) subscribe(ctx context.Context, channel string, h Handler, out chan<- *protocol.Publication) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, err)
	}
	s := &Subscription{
		c: c, channel: channel, handler: h, out: out,
		done: make(chan struct{}), wake: make(chan struct{}, 1),
		ready: make(chan struct{}),
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, c.reason)
	case c.subs[channel] != nil:
		c.mu.Unlock()
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, ErrSubscribed)
	}
	c.subs[channel] = s
	cn := c.conn
	c.mu.Unlock()
	go s.loop()
	if cn != nil {
		s.subscribeOn(cn)
	}
	select {
	case <-s.ready:
		if s.readyErr != nil {
			return nil, fmt.Errorf("client: subscribe %q: %w", channel, s.readyErr)
		}
		return s, nil
	case <-ctx.Done():
		if live := s.detach(ErrClosed); live != nil { // the reply won the race: undo it
			live.post(&protocol.Command{Op: protocol.OpUnsubscribe, Channel: channel})
		}
		return nil, fmt.Errorf("client: subscribe %q: %w", channel, ctx.Err())
	}
}

// Channel returns the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// Position returns the position of the last publication received for the
// subscription (handed to its handler or queued for it).
func (s *Subscription) Position() protocol.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Done is closed when the subscription ends: Unsubscribe, the client's Close,
// or the server refusing it after a reconnect (see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended, or nil while it lasts.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Unsubscribe ends the subscription: its handler is not called after the one
// running, if any, returns. It tells the server when connected, waiting for
// the reply until ctx ends; the subscription ends locally either way.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	live := s.detach(ErrClosed)
	if live == nil {
		return nil
	}
	_, err := live.call(ctx, &protocol.Command{Op: protocol.OpUnsubscribe, Channel: s.channel}, nil)
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.Code == protocol.ErrNotSubscribed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("client: unsubscribe %q: %w", s.channel, err)
	}
	return nil
}

// detach removes s from the client and stops it. It returns the connection
// the server holds the subscription on, if it is still up, for the caller
// to unsubscribe there.
func (s *Subscription) detach(reason error) *conn {
	s.c.mu.Lock()
	if s.c.subs[s.channel] == s {
		delete(s.c.subs, s.channel)
	}
	cur := s.c.conn
	s.c.mu.Unlock()
	s.mu.Lock()
	live := s.live
	s.stopLocked(reason)
	s.mu.Unlock()
	if live == nil || live != cur {
		return nil // not subscribed yet (the reply will undo it), or that connection is gone
	}
	return live
}

// stop ends the subscription without telling the server (the client is closing).
func (s *Subscription) stop(reason error) {
	s.mu.Lock()
	s.stopLocked(reason)
	s.mu.Unlock()
}

func (s *Subscription) stopLocked(reason error) {
	if s.stopped {
		return
	}
	s.stopped = true
	s.err = reason
	s.queue = nil
	select {
	case <-s.ready:
	default:
		s.readyErr = reason
		close(s.ready)
	}
	close(s.done)
}

// subscribeOn sends the subscribe command on cn, with recovery from the last
// position when there is one. It sends at most once per connection.
func (s *Subscription) subscribeOn(cn *conn) {
	s.mu.Lock()
	if s.stopped || s.sentOn == cn {
		s.mu.Unlock()
		return
	}
	s.sentOn = cn
	var rec *protocol.Position
	if s.hasPos {
		p := s.pos
		rec = &p
	}
	s.mu.Unlock()
	cmd := &protocol.Command{Op: protocol.OpSubscribe, Channel: s.channel, Recover: rec}
	cl := &call{ch: make(chan *frame, 1), onReply: func(cn *conn, f *frame) { s.subscribed(cn, f, rec) }}
	if err := cn.send(cmd, cl); err != nil {
		s.c.log.Debug("subscribe not sent: connection broke", "channel", s.channel, "err", err)
	}
}

// subscribed applies a subscribe reply. It runs on cn's reader goroutine,
// before any publication that follows the reply.
func (s *Subscription) subscribed(cn *conn, f *frame, rec *protocol.Position) {
	var res protocol.SubscribeResult
	var err error
	if f.Error != nil {
		err = f.Error
	} else {
		if jerr := json.Unmarshal(f.Result, &res); jerr != nil {
			err = fmt.Errorf("decode subscribe result: %w", jerr)
		}
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		if err == nil {
			cn.post(&protocol.Command{Op: protocol.OpUnsubscribe, Channel: s.channel})
		}
		return
	}
	if err != nil {
		first := !s.hasPos
		s.stopLocked(err)
		s.mu.Unlock()
		s.c.mu.Lock()
		if s.c.subs[s.channel] == s {
			delete(s.c.subs, s.channel)
		}
		s.c.mu.Unlock()
		if !first {
			s.c.log.Warn("resubscribe refused", "channel", s.channel, "err", err)
			s.c.emit(Event{Type: Unsubscribed, Channel: s.channel, Position: s.Position(), Err: err})
		}
		return
	}
	cur := protocol.Position{Epoch: res.Epoch, Offset: res.Offset}
	switch {
	case rec == nil:
		s.pos = cur
	case res.Recovered && res.Epoch == s.pos.Epoch:
		s.enqueue(item{ev: &Event{Type: Recovered, Channel: s.channel, Position: cur}})
		for _, p := range res.Publications {
			if p.Epoch == "" {
				p.Epoch = res.Epoch
			}
			s.accept(p)
		}
		if res.Offset > s.pos.Offset {
			s.pos.Offset = res.Offset
		}
	default:
		prev := s.pos
		s.pos = cur
		s.enqueue(item{ev: &Event{Type: Gap, Channel: s.channel, Position: cur, Previous: prev}})
	}
	s.hasPos = true
	s.live = cn
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.mu.Unlock()
}

// apply takes a pub push that came on cn.
func (s *Subscription) apply(cn *conn, p *protocol.Publication) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.live != cn {
		return // not (yet) subscribed on this connection
	}
	s.accept(p)
}

// accept queues p unless it is a duplicate, and notes a gap before it. s.mu
// is held.
func (s *Subscription) accept(p *protocol.Publication) {
	switch {
	case p.Epoch != s.pos.Epoch:
		prev := s.pos
		s.pos = protocol.Position{Epoch: p.Epoch, Offset: p.Offset - 1}
		s.enqueue(item{ev: &Event{Type: Gap, Channel: s.channel, Position: s.pos, Previous: prev}})
	case p.Offset <= s.pos.Offset:
		s.dups++
		return
	case p.Offset > s.pos.Offset+1:
		prev := s.pos
		s.pos.Offset = p.Offset - 1
		s.enqueue(item{ev: &Event{Type: Gap, Channel: s.channel, Position: s.pos, Previous: prev}})
	}
	s.pos.Offset = p.Offset
	s.enqueue(item{pub: p})
}

func (s *Subscription) enqueue(it item) {
	s.queue = append(s.queue, it)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop runs the handler on queued items until the subscription stops.
func (s *Subscription) loop() {
	for {
		s.mu.Lock()
		items := s.queue
		s.queue = nil
		stopped := s.stopped
		s.mu.Unlock()
		if stopped {
			return
		}
		for _, it := range items {
			select {
			case <-s.done:
				return
			default:
			}
			if it.ev != nil {
				s.c.emit(*it.ev)
				continue
			}
			if s.handler != nil {
				s.handler(it.pub)
				continue
			}
			select {
			case s.out <- it.pub:
			case <-s.done:
				return
			}
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}
