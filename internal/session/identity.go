package session

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/protocol"
)

// Peer is what a transport knows of a connection's other end, for the
// Authenticator.
type Peer struct {
	// Transport is "websocket", "tcp" or "grpc".
	Transport string
	// RemoteAddr is the peer's host:port.
	RemoteAddr string
	// Header holds the WebSocket upgrade request's headers, or a gRPC
	// stream's metadata; nil on TCP.
	Header http.Header
	// Query is the WebSocket upgrade request's query; nil elsewhere.
	Query url.Values
}

// authState is what only some sessions need: their authentication, set when
// the session opens on a node with an Authenticator, and their presence,
// allocated at the first presence join (see lazy). Guarded by Session.mu
// (peer is set before the session is shared and read by the goroutine
// handling commands).
type authState struct {
	// pres is nil until the first subscribe to a channel with presence.
	pres *sessionPresence

	peer Peer
	// identity is set by a successful connect (or upgrade token), and
	// replaced by refresh.
	identity *auth.Identity
	// authErr is why the upgrade request's token was refused.
	authErr *protocol.Error
	// granted holds the channels subscription tokens granted.
	granted map[string]struct{}
	// timer runs authTimeout: at ConnectTimeout until the identity is set,
	// then at the identity's expiry. One timer for both: a connection
	// that connects at once pays for one.
	timer *time.Timer
}

// stop stops a's timer and returns its identity; a may be nil. Call it with
// Session.mu held.
func (a *authState) stop() *auth.Identity {
	if a == nil {
		return nil
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	return a.identity
}

// lazy returns s.auth, allocating it if need be. Call it with s.mu held.
func (s *Session) lazy() *authState {
	if s.auth == nil {
		s.auth = &authState{}
	}
	return s.auth
}

// ungrant forgets a subscription token's grant of channel. Call it with s.mu
// held.
func (s *Session) ungrant(channel string) {
	if s.auth != nil {
		delete(s.auth.granted, channel)
	}
}

// upgradeToken returns the token a WebSocket upgrade request carries: in
// Authorization: Bearer, in the cookie cfg.TokenCookie names, or in ?token=
// when cfg.TokenQuery allows it; "" when none.
func (cfg *Config) upgradeToken(p Peer) string {
	if h := p.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if cfg.TokenCookie != "" && p.Header != nil {
		if c, err := (&http.Request{Header: p.Header}).Cookie(cfg.TokenCookie); err == nil && c.Value != "" {
			return c.Value
		}
	}
	if cfg.TokenQuery {
		return p.Query.Get("token")
	}
	return ""
}

// startAuth runs when a session opens on a node with an Authenticator: it
// authenticates the upgrade request's token, if any, and otherwise gives the
// connection ConnectTimeout to connect.
func (s *Session) startAuth() {
	if tok := s.mgr.cfg.upgradeToken(s.auth.peer); tok != "" {
		id, perr := s.authenticate(tok, false)
		if perr == nil {
			perr = s.setIdentity(id)
		}
		if perr == nil {
			return
		}
		s.mu.Lock()
		s.auth.authErr = perr // answered to the first command, then the connection closes
		s.mu.Unlock()
	}
	if d := s.mgr.cfg.ConnectTimeout; d > 0 {
		s.mu.Lock()
		s.auth.timer = time.AfterFunc(d, s.authTimeout)
		s.mu.Unlock()
	}
}

// authTimeout ends a connection that has not authenticated in time, or
// whose identity has expired without a refresh. A timer that fired as the
// identity was set or refreshed finds nothing to do.
func (s *Session) authTimeout() {
	id := s.ident()
	switch {
	case id == nil:
		s.mgr.stats.ConnectTimeouts.Add(1)
		s.Disconnect(protocol.DisconnectConnectTimeout)
	case !id.ExpiresAt.IsZero() && !time.Now().Before(id.ExpiresAt):
		s.mgr.stats.TokensExpired.Add(1)
		s.Disconnect(protocol.DisconnectTokenExpired)
	}
}

// authenticate asks the Authenticator about token and turns its refusal
// into a reply error. The token never reaches the log or the reply.
func (s *Session) authenticate(token string, refresh bool) (*auth.Identity, *protocol.Error) {
	id, err := s.mgr.cfg.Authenticator.Authenticate(s.mgr.ctx, auth.Credentials{
		Token:      token,
		Client:     s.id,
		Transport:  s.auth.peer.Transport,
		RemoteAddr: s.auth.peer.RemoteAddr,
		Header:     s.auth.peer.Header,
		Refresh:    refresh,
	})
	if err == nil && id == nil {
		err = fmt.Errorf("%w: the authenticator returned no identity", auth.ErrUnauthorized)
	}
	if err != nil {
		s.mgr.stats.AuthFailures.Add(1)
		s.mgr.log.Info("authentication failed", "client", s.id, "transport", s.auth.peer.Transport, "remote", s.auth.peer.RemoteAddr, "err", err)
		if errors.Is(err, auth.ErrTokenExpired) {
			return nil, protocol.NewError(protocol.ErrTokenExpired, "the token has expired")
		}
		return nil, protocol.NewError(protocol.ErrUnauthorized, "the token is not valid")
	}
	return id, nil
}

// setIdentity makes id the session's identity and arms its expiry. A new
// identity (refresh, or a second connect) must keep the user; a first one
// takes a place in the user's connection count.
func (s *Session) setIdentity(id *auth.Identity) *protocol.Error {
	s.mu.Lock()
	old := s.auth.identity
	s.mu.Unlock()
	switch {
	case old != nil && old.User != id.User:
		return protocol.NewError(protocol.ErrUnauthorized, "the token is for another user")
	case old == nil && !s.mgr.addUser(s, id.User):
		s.mgr.stats.UserLimited.Add(1)
		return protocol.NewError(protocol.ErrTooManyConns, "at most %d connections per user", s.mgr.cfg.MaxConnsPerUser)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if old == nil { // Closed ran without this identity to forget
			s.mgr.removeUser(s, id.User)
		}
		return protocol.NewError(protocol.ErrUnavailable, "connection is closing")
	}
	defer s.mu.Unlock()
	s.auth.identity = id
	s.auth.peer.Header = nil // the first authentication has seen them: keep no copy per connection
	switch t := s.auth.timer; {
	case id.ExpiresAt.IsZero():
		if t != nil {
			t.Stop() // the connect timeout, or the former identity's expiry
		}
	case t != nil:
		t.Reset(time.Until(id.ExpiresAt))
	default:
		s.auth.timer = time.AfterFunc(time.Until(id.ExpiresAt), s.authTimeout)
	}
	return nil
}

// expiry returns when id expires, for a connect or refresh result.
func expiry(id *auth.Identity) protocol.Expiry {
	if id.ExpiresAt.IsZero() {
		return protocol.Expiry{}
	}
	return protocol.Expiry{Expires: id.ExpiresAt.Unix(), TTL: max(int64(time.Until(id.ExpiresAt).Seconds()), 0)}
}

// refuseAuth answers a failed authentication and closes the connection:
// reconnect with a fresh token after token_expired, never after unauthorized.
func (s *Session) refuseAuth(id uint64, perr *protocol.Error) {
	s.replyError(id, perr)
	switch perr.Code {
	case protocol.ErrTokenExpired:
		s.Disconnect(protocol.DisconnectTokenExpired)
	case protocol.ErrTooManyConns:
		s.Disconnect(protocol.DisconnectTooManyConns)
	default:
		s.Disconnect(protocol.DisconnectUnauthorized)
	}
}

func (s *Session) connect(cmd *protocol.Command) (any, *protocol.Error) {
	res := &protocol.ConnectResult{
		Client:  s.id,
		Version: protocol.Version,
		Ping:    int(s.mgr.cfg.PingInterval.Seconds()),
	}
	if s.mgr.cfg.Authenticator == nil {
		return res, nil
	}
	s.mu.Lock()
	cur, authErr := s.auth.identity, s.auth.authErr
	s.mu.Unlock()
	var id *auth.Identity
	switch {
	case cmd.Token == "" && cur != nil: // authenticated at the upgrade
		id = cur
	case cmd.Token == "" && authErr != nil:
		return nil, authErr
	default:
		var perr *protocol.Error
		if id, perr = s.authenticate(cmd.Token, false); perr != nil {
			return nil, perr
		}
		if perr = s.setIdentity(id); perr != nil {
			return nil, perr
		}
	}
	res.User = id.User
	res.Expiry = expiry(id)
	return res, nil
}

func (s *Session) refresh(cmd *protocol.Command) (any, *protocol.Error) {
	if s.mgr.cfg.Authenticator == nil {
		return nil, protocol.NewError(protocol.ErrUnknownOp, "this server has no credentials to refresh")
	}
	id, perr := s.authenticate(cmd.Token, true)
	if perr != nil {
		return nil, perr
	}
	if perr := s.setIdentity(id); perr != nil {
		return nil, perr
	}
	return expiry(id), nil
}

// grant checks a subscription token for channel and, when it is valid, counts
// channel as granted to the connection until it unsubscribes.
func (s *Session) grant(channel, token string) *protocol.Error {
	ca, ok := s.mgr.cfg.Authenticator.(auth.ChannelAuthenticator)
	if !ok {
		return protocol.NewError(protocol.ErrBadRequest, "this server takes no subscription tokens")
	}
	if err := ca.AuthenticateChannel(s.mgr.ctx, s.ident(), channel, token); err != nil {
		s.mgr.log.Info("subscription token refused", "client", s.id, "channel", channel, "err", err)
		if errors.Is(err, auth.ErrTokenExpired) {
			return protocol.NewError(protocol.ErrTokenExpired, "the subscription token has expired")
		}
		return protocol.NewError(protocol.ErrPermission, "the subscription token does not grant %q", channel)
	}
	s.mu.Lock()
	if s.auth.granted == nil {
		s.auth.granted = make(map[string]struct{}, 1)
	}
	s.auth.granted[channel] = struct{}{}
	s.mu.Unlock()
	return nil
}

// identityFor returns the identity to authorise an action on channel with:
// the session's, with channel among its grants when a subscription token
// granted it.
func (s *Session) identityFor(channel string) *auth.Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth == nil {
		return nil
	}
	id := s.auth.identity
	if _, ok := s.auth.granted[channel]; ok && id != nil && !id.Granted(channel) {
		cp := *id
		cp.Channels = append(slices.Clip(id.Channels), channel)
		return &cp
	}
	return id
}
