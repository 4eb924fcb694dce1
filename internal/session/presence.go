package session

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/internal/presence"
	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// sessionPresence is what a session keeps for presence, allocated at its
// first subscribe to a channel that keeps presence: a connection that never
// uses presence pays one nil pointer.
type sessionPresence struct {
	// since is when the connection first joined a channel's presence: its
	// members' connected_at.
	since time.Time
}

// presenceOptions returns how presence works in channel; Track is false
// when the node has no presence or its Authorizer no PresencePolicy.
func (s *Session) presenceOptions(channel string) auth.PresenceOptions {
	if s.mgr.cfg.Presence == nil {
		return auth.PresenceOptions{}
	}
	pol, ok := s.mgr.cfg.Authorizer.(auth.PresencePolicy)
	if !ok {
		return auth.PresenceOptions{}
	}
	return pol.PresenceOptions(channel)
}

// joinPresence adds the session to channel's presence, once it is
// subscribed, when the channel keeps presence. A store failure is logged:
// the subscription stands without presence.
func (s *Session) joinPresence(channel string) {
	opts := s.presenceOptions(channel)
	if !opts.Track {
		return
	}
	m := backend.Member{Client: s.id}
	s.mu.Lock()
	a := s.lazy()
	if a.pres == nil {
		a.pres = &sessionPresence{since: time.Now()}
	}
	m.ConnectedAt = a.pres.since
	if a.identity != nil {
		m.User, m.Info = a.identity.User, a.identity.Info
	}
	s.mu.Unlock()
	if len(m.Info) > 0 && !json.Valid(m.Info) { // presence replies copy it as it is
		s.mgr.log.Warn("presence: the identity's info is not valid JSON: left out", "client", s.id)
		m.Info = nil
	}
	p := s.mgr.cfg.Presence
	if err := p.Join(s.mgr.ctx, channel, m, opts); err != nil {
		s.mgr.log.Warn("presence: join failed", "client", s.id, "channel", channel, "err", err)
		return
	}
	s.mu.Lock()
	gone := s.closed || s.subscribed(channel) < 0
	s.mu.Unlock()
	if gone { // closed or unsubscribed meanwhile, maybe before its leave ran
		s.leavePresence(channel)
	}
}

// leavePresence removes the session from channel's presence, when the
// channel keeps presence and the session has joined one.
func (s *Session) leavePresence(channel string) {
	s.mu.Lock()
	joined := s.auth != nil && s.auth.pres != nil
	s.mu.Unlock()
	if !joined {
		return
	}
	if opts := s.presenceOptions(channel); opts.Track {
		_ = s.mgr.cfg.Presence.Leave(context.WithoutCancel(s.mgr.ctx), channel, s.id, opts) // logged by Leave
	}
}

// RefreshPresence renews the presence entries of every session's channels
// that keep presence, one batch per channel. The node calls it every
// presence refresh interval, well within the presence store's TTL.
func (m *Manager) RefreshPresence(ctx context.Context) {
	p := m.cfg.Presence
	if p == nil {
		return
	}
	batches := make(map[string][]string)
	tracked := make(map[string]bool)
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		ss := slices.Collect(maps.Values(sh.sessions))
		sh.mu.Unlock()
		for _, s := range ss {
			s.mu.Lock()
			var subs []string
			if s.auth != nil && s.auth.pres != nil && !s.closed {
				subs = slices.Clone(s.subs)
			}
			s.mu.Unlock()
			for _, ch := range subs {
				track, known := tracked[ch]
				if !known {
					track = s.presenceOptions(ch).Track
					tracked[ch] = track
				}
				if track {
					batches[ch] = append(batches[ch], s.id)
				}
			}
		}
	}
	for ch, clients := range batches {
		if ctx.Err() != nil {
			return
		}
		_ = p.Refresh(ctx, ch, clients) // logged by Refresh
	}
}

// presenceChannel checks a presence or presence_stats command: a valid
// channel, the presence permission and a channel that keeps presence.
func (s *Session) presenceChannel(cmd *protocol.Command) *protocol.Error {
	if perr := s.validChannel(cmd.Channel); perr != nil {
		return perr
	}
	if perr := s.authorize(auth.Presence, cmd.Channel); perr != nil {
		return perr
	}
	if !s.presenceOptions(cmd.Channel).Track {
		return protocol.NewError(protocol.ErrPermission, "presence is off in %q", cmd.Channel)
	}
	return nil
}

// presence answers a presence command itself, its result appended straight
// from the store's members (presence.AppendMembers), for the channels of
// many members.
func (s *Session) presence(cmd *protocol.Command) *protocol.Error {
	if perr := s.presenceChannel(cmd); perr != nil {
		return perr
	}
	var b []byte
	if cmd.ID != 0 {
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, cmd.ID, 10)
		b = append(b, `,"result":`...)
	} else {
		b = append(b, `{"result":`...)
	}
	b, n, err := s.mgr.cfg.Presence.AppendMembers(s.mgr.ctx, b, cmd.Channel, s.mgr.cfg.MaxPresenceReply)
	switch {
	case errors.Is(err, presence.ErrTooLarge):
		return protocol.NewError(protocol.ErrTooManyMembers, "%q has %d members, more than one reply holds; use presence_stats", cmd.Channel, n)
	case err != nil:
		return s.hubError(cmd.Op, err)
	}
	b = append(b, '}')
	s.write(s.conn.Format().AppendFrame(make([]byte, 0, len(b)+10), b))
	return nil
}

func (s *Session) presenceStats(cmd *protocol.Command) (any, *protocol.Error) {
	if perr := s.presenceChannel(cmd); perr != nil {
		return nil, perr
	}
	st, err := s.mgr.cfg.Presence.Counts(s.mgr.ctx, cmd.Channel)
	if err != nil {
		return nil, s.hubError(cmd.Op, err)
	}
	return &st, nil
}

// Push writes a presence push; it implements hub.Pusher.
func (s *Session) Push(m *wire.Message) {
	s.write(m.Frame(s.conn.Format()))
}
