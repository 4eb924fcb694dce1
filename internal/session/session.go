// Package session runs the protocol for one client connection, whatever its
// transport: it decodes commands, checks them against the limits, drives the hub
// and writes replies. Transports (WebSocket, TCP, gRPC) own the bytes on the wire
// and the heartbeats; a session owns the client's subscriptions.
//
// A session must not block on its connection: Conn.Write queues and returns.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tetherhq/tether/auth"
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
	// auth is the client's identity and what leads to it, on a node with an
	// Authenticator, and its presence state once it joins a channel's
	// presence; nil until then (an anonymous session without presence).
	// Kept apart so that a session stays in a small size class.
	auth *authState
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
	if perr, fatal := s.admit(cmd.Op); perr != nil {
		if fatal {
			s.refuseAuth(cmd.ID, perr)
		} else {
			s.replyError(cmd.ID, perr)
		}
		return cmd.Op
	}
	var result any
	var perr *protocol.Error
	switch cmd.Op {
	case protocol.OpConnect:
		if result, perr = s.connect(cmd); perr != nil {
			s.refuseAuth(cmd.ID, perr)
			return cmd.Op
		}
	case protocol.OpRefresh:
		result, perr = s.refresh(cmd)
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
	case protocol.OpPresence:
		perr = s.presence(cmd) // replies itself
		if perr == nil {
			return cmd.Op
		}
	case protocol.OpPresenceStats:
		result, perr = s.presenceStats(cmd)
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

// admit refuses the commands a connection may not send before it has
// authenticated, when the node authenticates. fatal says the connection
// must close: its upgrade request's token was refused.
func (s *Session) admit(op string) (perr *protocol.Error, fatal bool) {
	switch op {
	case protocol.OpConnect, protocol.OpPing, protocol.OpPong:
		return nil, false
	}
	if s.mgr.cfg.Authenticator == nil {
		return nil, false
	}
	s.mu.Lock()
	id, authErr := s.auth.identity, s.auth.authErr
	s.mu.Unlock()
	switch {
	case id != nil:
		return nil, false
	case authErr != nil:
		return authErr, true
	}
	return protocol.NewError(protocol.ErrUnauthorized, "connect with a token first"), false
}

func (s *Session) ident() *auth.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth == nil {
		return nil
	}
	return s.auth.identity
}

// allow takes a token for one command from s's bucket.
func (s *Session) allow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmds.take(time.Now(), s.mgr.cfg.CommandRate, max(s.mgr.cfg.CommandBurst, 1))
}

// tokenBucket limits a rate: it holds up to burst tokens, refilled at rate
// per second, and each command takes one. It keeps the bucket as one time,
// as the generic cell rate algorithm does: when the bucket would be full
// again. 8 bytes kept in the session, where a rate.Limiter would be a pointer
// to 80.
type tokenBucket struct {
	full int64 // unix nanoseconds; at or before now: the bucket is full
}

// take takes a token at now and reports whether there was one.
func (b *tokenBucket) take(now time.Time, rate float64, burst int) bool {
	t := now.UnixNano()
	// nanoseconds per token, capped so that full-t, at most burst steps,
	// cannot overflow however slow the rate
	step := int64(min(1e9/rate, (1<<62)/float64(burst)))
	full := max(b.full, t)
	if full-t > int64(burst-1)*step { // less than one token left
		return false
	}
	b.full = full + step
	return true
}

// authorize asks the node's Authorizer whether the connection may do a on
// channel.
func (s *Session) authorize(a auth.Action, channel string) *protocol.Error {
	z := s.mgr.cfg.Authorizer
	if z == nil {
		return nil
	}
	if err := z.Authorize(s.mgr.ctx, s.identityFor(channel), a, channel); err != nil {
		if !errors.Is(err, auth.ErrPermissionDenied) {
			s.mgr.log.Warn("authorizer failed", "client", s.id, "action", string(a), "err", err)
		}
		return protocol.NewError(protocol.ErrPermission, "not allowed to %s %q", a, channel)
	}
	return nil
}

// from says who the session is, for its publications.
func (s *Session) from() *protocol.ClientInfo {
	ci := &protocol.ClientInfo{Client: s.id}
	if id := s.ident(); id != nil {
		ci.User, ci.Info = id.User, id.Info
	}
	return ci
}

func (s *Session) validChannel(name string) *protocol.Error {
	return protocol.ValidateChannel(name, s.mgr.cfg.MaxChannelLength)
}

func (s *Session) subscribe(cmd *protocol.Command) *protocol.Error {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return perr
	}
	if cmd.Token != "" {
		if perr := s.grant(cmd.Channel, cmd.Token); perr != nil {
			return perr
		}
	}
	perr := s.subscribeGranted(cmd)
	if perr != nil && cmd.Token != "" {
		s.mu.Lock()
		if s.subscribed(cmd.Channel) < 0 {
			s.ungrant(cmd.Channel) // a grant lives with its subscription
		}
		s.mu.Unlock()
	}
	return perr
}

// subscribeGranted subscribes once the subscription token, if any, has
// been taken into account.
func (s *Session) subscribeGranted(cmd *protocol.Command) *protocol.Error {
	if perr := s.authorize(auth.Subscribe, cmd.Channel); perr != nil {
		return perr
	}
	cmd.Channel = s.mgr.hub.Intern(cmd.Channel) // kept in s.subs: share the hub's copy
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

	// Join presence before the reply: a client told it is subscribed is
	// present. A failed subscribe leaves again below.
	s.joinPresence(cmd.Channel)
	err := s.mgr.hub.Subscribe(s.mgr.ctx, cmd.Channel, s, cmd.Recover, func(res *protocol.SubscribeResult) {
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
		if !closed { // else Closed left it
			s.leavePresence(cmd.Channel)
		}
		return s.hubError(cmd.Op, err)
	}
	if closed { // Closed ran meanwhile and may have missed this channel
		s.mgr.hub.Unsubscribe(context.WithoutCancel(s.mgr.ctx), cmd.Channel, s)
	}
	return nil
}

func (s *Session) unsubscribe(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return nil, perr
	}
	s.mu.Lock()
	ok := s.dropSub(cmd.Channel)
	s.ungrant(cmd.Channel)
	s.mu.Unlock()
	if !ok {
		return nil, protocol.NewError(protocol.ErrNotSubscribed, "not subscribed to %q", cmd.Channel)
	}
	s.mgr.hub.Unsubscribe(s.mgr.ctx, cmd.Channel, s)
	s.leavePresence(cmd.Channel)
	return struct{}{}, nil
}

func (s *Session) publish(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return nil, perr
	}
	if len(cmd.Data) == 0 {
		return nil, protocol.NewError(protocol.ErrBadRequest, "data is required")
	}
	if perr := s.authorize(auth.Publish, cmd.Channel); perr != nil {
		return nil, perr
	}
	pos, err := s.mgr.Publish(s.mgr.ctx, cmd.Channel, cmd.Data, s.from())
	if err != nil {
		return nil, s.hubError(cmd.Op, err)
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
	if perr := s.authorize(auth.History, cmd.Channel); perr != nil {
		return nil, perr
	}
	res, err := s.mgr.hub.History(s.mgr.ctx, cmd.Channel, cmd.Since, cmd.Limit)
	if err != nil {
		return nil, s.hubError(cmd.Op, err)
	}
	return res, nil
}

func (s *Session) replyError(id uint64, perr *protocol.Error) {
	s.mgr.stats.CommandErrors.Add(1)
	s.reply(&protocol.Reply{ID: id, Error: perr})
}

func (s *Session) reply(r *protocol.Reply) {
	b, err := protocol.EncodeReply(r) // a recovery's publications are copied as encoded
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
	id := s.auth.stop()
	s.mu.Unlock()
	if id != nil {
		s.mgr.removeUser(s, id.User)
	}
	ctx := context.WithoutCancel(s.mgr.ctx) // a node shutting down still lets go
	for _, ch := range subs {
		s.mgr.hub.Unsubscribe(ctx, ch, s)
		s.leavePresence(ch)
	}
	s.mgr.remove(s)
}

func formatID(prefix string, n uint64) string { return prefix + strconv.FormatUint(n, 36) }

// hubError turns an error of the hub, its backends or Manager.Publish into a
// reply error: a limit the client can act on, or the service being
// unavailable. The backend's own message goes to the server's log only.
func (s *Session) hubError(op string, err error) *protocol.Error {
	var perr *protocol.Error
	if errors.As(limitError(err), &perr) {
		return perr
	}
	s.mgr.log.Warn("backend failed", "op", op, "client", s.id, "err", err)
	return protocol.NewError(protocol.ErrUnavailable, "the channel backend failed; try again")
}

// Unsubscribe ends the session's subscription to channel on the server's
// behalf and tells the client with an unsubscribe push. It reports whether
// the session was subscribed.
func (s *Session) Unsubscribe(ctx context.Context, channel string, code int, reason string) bool {
	s.mu.Lock()
	ok := s.dropSub(channel)
	s.ungrant(channel)
	s.mu.Unlock()
	if !ok {
		return false
	}
	s.mgr.hub.Unsubscribe(ctx, channel, s)
	s.leavePresence(channel)
	b, _ := json.Marshal(&protocol.Unsubscribe{Op: protocol.PushUnsubscribe, Channel: channel, Code: code, Reason: reason})
	s.write(s.conn.Format().AppendFrame(make([]byte, 0, len(b)+10), b))
	return true
}
