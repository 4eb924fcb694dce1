// Package auth defines the hooks through which a tether node learns who a
// connection is and what it may do: an Authenticator turns the credentials a
// client presents into an Identity, and an Authorizer allows or refuses each
// channel operation. Embedders implement them (or use the JWT authenticator
// tether ships) and set them in the node's Config.
//
// The package holds types only. It must not depend on tether's server packages,
// and must not log credentials.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Errors an Authenticator or Authorizer returns, wrapped or as they are. A
// node answers ErrTokenExpired with token_expired, ErrPermissionDenied with
// permission_denied, and any other error with unauthorized; the error's text
// is logged, never sent to the client, and must not contain the token.
var (
	// ErrUnauthorized: the credentials are missing, malformed or not valid.
	ErrUnauthorized = errors.New("auth: unauthorized")
	// ErrTokenExpired: the credentials were valid and have expired.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrPermissionDenied: the identity may not do this.
	ErrPermissionDenied = errors.New("auth: permission denied")
)

// Credentials are what a client presented to authenticate.
type Credentials struct {
	// Token is the token of the connect or refresh command or, for a
	// WebSocket connect without one, the token of the upgrade request
	// (Authorization: Bearer, the token cookie, or ?token= when allowed).
	Token string
	// Client is the connection's client id.
	Client string
	// Transport is "websocket", "tcp" or "grpc".
	Transport string
	// RemoteAddr is the peer's address (host:port).
	RemoteAddr string
	// Header holds the WebSocket upgrade request's headers (for gRPC, the
	// stream's metadata) until the connection has authenticated; nil on TCP
	// and for refresh. Do not change it.
	Header http.Header
	// Refresh is true when the credentials come with a refresh command of
	// an authenticated connection.
	Refresh bool
}

// Identity is who a connection is, once authenticated.
type Identity struct {
	// User is the user id; empty for an anonymous connection.
	User string
	// Info is what the credentials say about the user, shown to others with
	// the user's publications and presence. Optional JSON.
	Info json.RawMessage
	// ExpiresAt is when the identity stops being valid; zero: never.
	ExpiresAt time.Time
	// Channels are channels the credentials grant, for namespaces whose
	// permissions say "granted".
	Channels []string
}

// An Authenticator checks credentials. Authenticate is called once per
// connect command, from the connection's goroutine, and must be safe for
// concurrent use by many connections. It returns the connection's identity,
// or an error (see the package's errors); it must respect ctx.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (*Identity, error)
}

// A HeaderBlindAuthenticator is an Authenticator that never reads
// Credentials.Header: a server then keeps no copy of each connection's
// upgrade headers for it, and passes a nil Header.
type HeaderBlindAuthenticator interface {
	Authenticator
	// IgnoresHeader marks the Authenticator; it is never called.
	IgnoresHeader()
}

// A ChannelAuthenticator checks subscription tokens: a token that grants one
// connection's user one channel. An Authenticator that also implements it is
// asked when a subscribe carries a token; on success the channel counts as
// granted (Identity.Channels) for that connection until it unsubscribes.
// It must be safe for concurrent use.
type ChannelAuthenticator interface {
	AuthenticateChannel(ctx context.Context, id *Identity, channel, token string) error
}

// Action is a channel operation a connection asks for.
type Action string

// The actions an Authorizer is asked about.
const (
	Subscribe Action = "subscribe"
	Publish   Action = "publish"
	History   Action = "history"
	Presence  Action = "presence"
)

// An Authorizer decides whether an identity may do an action on a channel.
// Authorize is called before every such command, on the connection's
// goroutine, and must be safe for concurrent use and cheap: it is on the
// path of every publish. It returns nil to allow, or an error
// (ErrPermissionDenied, wrapped or not, for a refusal). id is nil for a
// connection that has not authenticated.
type Authorizer interface {
	Authorize(ctx context.Context, id *Identity, a Action, channel string) error
}

// Authenticated reports whether id is an authenticated user (not nil, with a
// user id).
func (id *Identity) Authenticated() bool { return id != nil && id.User != "" }

// Granted reports whether id's credentials grant channel.
func (id *Identity) Granted(channel string) bool {
	if id == nil {
		return false
	}
	for _, c := range id.Channels {
		if c == channel {
			return true
		}
	}
	return false
}

// JoinLeave says which join and leave pushes a channel's subscribers get.
type JoinLeave string

// The JoinLeave settings.
const (
	// JoinLeaveOff: none. "" means the same.
	JoinLeaveOff JoinLeave = "off"
	// JoinLeaveClients: one join per connection that subscribes, one leave
	// per connection that goes.
	JoinLeaveClients JoinLeave = "clients"
	// JoinLeaveUsers: a user's first connection to the channel is its join
	// and its last one its leave; its other tabs and devices are silent.
	// Anonymous connections join and leave one by one.
	JoinLeaveUsers JoinLeave = "users"
)

// PresenceOptions say how presence works in a channel.
type PresenceOptions struct {
	// Track keeps the channel's members in the presence store, for the
	// presence and presence_stats operations and the pushes below.
	Track bool
	// JoinLeave says which join and leave pushes subscribers get (with
	// Track).
	JoinLeave JoinLeave
	// Occupancy pushes the channel's counts of clients and users to its
	// subscribers when they change (with Track).
	Occupancy bool
}

// A PresencePolicy says how presence works in each channel. An Authorizer
// that also implements it is asked at each subscribe; a node whose
// Authorizer does not (or that has none) keeps no channel's members.
// PresenceOptions must be safe for concurrent use and cheap, and must give
// one channel the same options for as long as the node runs.
type PresencePolicy interface {
	PresenceOptions(channel string) PresenceOptions
}
