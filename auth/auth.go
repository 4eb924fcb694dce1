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
	// Token is the token of the connect command.
	Token string
	// Client is the connection's client id.
	Client string
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
