// Package session runs the protocol for one client connection, whatever its
// transport: it decodes commands, checks them against the limits, drives the hub
// and writes replies. Transports (WebSocket, TCP, gRPC) own the bytes on the wire
// and the heartbeats; a session owns the client's subscriptions.
//
// A session must not block on its connection: Conn.Write queues and returns.
package session

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// ErrSlowConsumer is returned by Conn.Write when the connection's outbound
// buffer is full.
var ErrSlowConsumer = errors.New("session: outbound buffer full")

// Conn is the transport side of a session.
type Conn interface {
	// Format is the framing the connection's bytes use.
	Format() wire.Format
	// Write queues bytes already framed for Format, in order, without blocking. It
	// returns ErrSlowConsumer when the outbound buffer is over its limit.
	Write(b []byte) error
	// Close sends d as a disconnect push, closes the connection with d.Code and
	// then calls Session.Closed. Only the first call has an effect.
	Close(d protocol.Disconnect)
}

// Session is one client's protocol state. Handle is called by the transport, one
// command at a time; Deliver by the hub; Disconnect and Closed from anywhere.
type Session struct {
	id   string
	mgr  *Manager
	conn Conn

	mu     sync.Mutex
	cmds   tokenBucket // the command rate limit
	subs   []string    // channels subscribed; a slice, not a map: most hold one or two
	closed bool
	user   string
}

// subscribed returns the index of channel in s.subs, or -1. Call it with s.mu held.
func (s *Session) subscribed(channel string) int {
	return slices.Index(s.subs, channel)
}

// dropSub removes channel from s.subs and reports whether it was there. Call
// it with s.mu held.
func (s *Session) dropSub(channel string) bool {
	i := s.subscribed(channel)
	if i >= 0 {
		s.subs = slices.Delete(s.subs, i, i+1)
	}
	return i >= 0
}

// ID returns the session's client id.
func (s *Session) ID() string { return s.id }

// Handle runs one command received as data and writes its reply. The
// WebSocket and TCP transports call it on their event loop, which serves every
// connection: it must not block. data is not kept after Handle returns.
func (s *Session) Handle(data []byte) {
	observe := s.mgr.cfg.ObserveCommand
	if observe == nil {
		s.handle(data)
		return
	}
	start := time.Now()
	op := s.handle(data)
	observe(op, time.Since(start))
}

// handle runs one command and returns its op ("" when it could not be decoded).
func (s *Session) handle(data []byte) string {
	cmd, err := protocol.DecodeCommand(data)
	if err != nil {
		var perr *protocol.Error
		if !errors.As(err, &perr) {
			perr = protocol.NewError(protocol.ErrBadRequest, "%v", err)
		}
		s.replyError(cmd.ID, perr)
		return ""
	}
	if rate := s.mgr.cfg.CommandRate; rate > 0 && !s.allow() {
		s.mgr.stats.RateLimited.Add(1)
		s.replyError(cmd.ID, protocol.NewError(protocol.ErrRateLimited, "more than %g commands per second", rate))
		return cmd.Op
	}
	var result any
	var perr *protocol.Error
	switch cmd.Op {
	case protocol.OpConnect:
		result, perr = s.connect(cmd)
	case protocol.OpSubscribe:
		perr = s.subscribe(cmd) // replies itself, under the channel's lock
		if perr == nil {
			return cmd.Op
		}
	case protocol.OpUnsubscribe:
		result, perr = s.unsubscribe(cmd)
	case protocol.OpPublish:
		result, perr = s.publish(cmd)
	case protocol.OpHistory:
		result, perr = s.history(cmd)
	case protocol.OpPing:
		result = struct{}{}
	case protocol.OpPong:
		return cmd.Op // an answer to a ping push: the transport has noted it
	default:
		perr = protocol.NewError(protocol.ErrUnknownOp, "unknown op %q", cmd.Op)
	}
	if perr != nil {
		s.replyError(cmd.ID, perr)
		return cmd.Op
	}
	s.reply(&protocol.Reply{ID: cmd.ID, Result: result})
	return cmd.Op
}

// allow takes a token for one command from s's bucket.
func (s *Session) allow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmds.take(time.Now(), s.mgr.cfg.CommandRate, max(s.mgr.cfg.CommandBurst, 1))
}

// tokenBucket limits a rate: it holds up to burst tokens, refilled at rate
// per second, and each command takes one. 16 bytes kept in the session, where
// a rate.Limiter would be a pointer to 80.
type tokenBucket struct {
	tokens float64
	last   int64 // unix nanoseconds of the last take; 0: never (the bucket is full)
}

// take takes a token at now and reports whether there was one.
func (b *tokenBucket) take(now time.Time, rate float64, burst int) bool {
	t := now.UnixNano()
	if b.last == 0 {
		b.tokens = float64(burst)
	} else if t > b.last {
		b.tokens = min(float64(burst), b.tokens+float64(t-b.last)*rate/1e9)
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *Session) connect(cmd *protocol.Command) (any, *protocol.Error) {
	return &protocol.ConnectResult{
		Client:  s.id,
		Version: protocol.Version,
		Ping:    int(s.mgr.cfg.PingInterval.Seconds()),
	}, nil
}

func (s *Session) validChannel(name string) *protocol.Error {
	return protocol.ValidateChannel(name, s.mgr.cfg.MaxChannelLength)
}

func (s *Session) subscribe(cmd *protocol.Command) *protocol.Error {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return perr
	}
	// Reserve the subscription, then subscribe without holding s.mu: the hub
	// calls back into s (reply, Deliver) with the channel locked.
	s.mu.Lock()
	switch dup := s.subscribed(cmd.Channel) >= 0; {
	case s.closed:
		s.mu.Unlock()
		return protocol.NewError(protocol.ErrUnavailable, "connection is closing")
	case dup:
		s.mu.Unlock()
		return protocol.NewError(protocol.ErrAlreadySub, "already subscribed to %q", cmd.Channel)
	case len(s.subs) >= s.mgr.cfg.MaxSubscriptions:
		s.mu.Unlock()
		return protocol.NewError(protocol.ErrTooManySubs, "at most %d subscriptions per connection", s.mgr.cfg.MaxSubscriptions)
	}
	s.subs = append(s.subs, cmd.Channel)
	s.mu.Unlock()

	err := s.mgr.hub.Subscribe(cmd.Channel, s, cmd.Recover, func(res *protocol.SubscribeResult) {
		if cmd.Recover != nil {
			if res.Recovered {
				s.mgr.stats.RecoveredOK.Add(1)
			} else {
				s.mgr.stats.RecoveredFailed.Add(1)
			}
		}
		s.reply(&protocol.Reply{ID: cmd.ID, Result: res})
	})
	s.mu.Lock()
	closed := s.closed
	if err != nil && !closed {
		s.dropSub(cmd.Channel)
	}
	s.mu.Unlock()
	if err != nil {
		return hubError(err)
	}
	if closed { // Closed ran meanwhile and may have missed this channel
		s.mgr.hub.Unsubscribe(cmd.Channel, s)
	}
	return nil
}

func (s *Session) unsubscribe(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return nil, perr
	}
	s.mu.Lock()
	ok := s.dropSub(cmd.Channel)
	s.mu.Unlock()
	if !ok {
		return nil, protocol.NewError(protocol.ErrNotSubscribed, "not subscribed to %q", cmd.Channel)
	}
	s.mgr.hub.Unsubscribe(cmd.Channel, s)
	return struct{}{}, nil
}

func (s *Session) publish(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return nil, perr
	}
	if len(cmd.Data) == 0 {
		return nil, protocol.NewError(protocol.ErrBadRequest, "data is required")
	}
	pos, err := s.mgr.Publish(cmd.Channel, cmd.Data, &protocol.ClientInfo{Client: s.id, User: s.user})
	if err != nil {
		return nil, hubError(err)
	}
	return &pos, nil
}

func (s *Session) history(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return nil, perr
	}
	if cmd.Limit < 0 {
		return nil, protocol.NewError(protocol.ErrBadRequest, "limit must not be negative")
	}
	return s.mgr.hub.History(cmd.Channel, cmd.Since, cmd.Limit), nil
}

func (s *Session) replyError(id uint64, perr *protocol.Error) {
	s.mgr.stats.CommandErrors.Add(1)
	s.reply(&protocol.Reply{ID: id, Error: perr})
}

func (s *Session) reply(r *protocol.Reply) {
	b, err := json.Marshal(r)
	if err != nil {
		s.mgr.log.Error("encode reply", "client", s.id, "err", err)
		b, _ = json.Marshal(&protocol.Reply{ID: r.ID, Error: protocol.NewError(protocol.ErrInternal, "cannot encode reply")})
	}
	s.write(s.conn.Format().AppendFrame(make([]byte, 0, len(b)+10), b))
}

func (s *Session) write(b []byte) {
	if err := s.conn.Write(b); errors.Is(err, ErrSlowConsumer) {
		s.mgr.stats.SlowConsumers.Add(1)
		s.mgr.log.Warn("slow consumer disconnected", "client", s.id)
		s.Disconnect(protocol.DisconnectSlowConsumer)
	}
}

// Deliver writes a batch of publications; it implements hub.Subscriber.
func (s *Session) Deliver(b *wire.Batch, from int) {
	s.write(b.Frames(s.conn.Format(), from))
}

// Disconnect closes the session's connection, telling the client why.
func (s *Session) Disconnect(d protocol.Disconnect) {
	s.conn.Close(d)
}

// Closed releases the session's subscriptions. The transport calls it once its
// connection is gone.
func (s *Session) Closed() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	subs := s.subs
	s.subs = nil
	s.mu.Unlock()
	for _, ch := range subs {
		s.mgr.hub.Unsubscribe(ch, s)
	}
	s.mgr.remove(s)
}

func formatID(prefix string, n uint64) string { return prefix + strconv.FormatUint(n, 36) }

// hubError turns an error of the hub (or of Manager.Publish) into a reply error.
func hubError(err error) *protocol.Error {
	var perr *protocol.Error
	if errors.As(limitError(err), &perr) {
		return perr
	}
	return protocol.NewError(protocol.ErrInternal, "%v", err)
}
