package tether

import (
	"errors"
	"fmt"

	"github.com/tetherhq/tether/internal/serverapi"
	"github.com/tetherhq/tether/protocol"
)

// Errors of a Node's methods. Test for them with errors.Is.
//
// A refusal of a request (ErrBadRequest, ErrInvalidChannel,
// ErrTooManyChannels) also holds the *protocol.Error that a client or the
// server API would get for it, with its code and message: errors.As reaches
// it. A cancelled context comes back as the context's own error
// (context.Canceled or context.DeadlineExceeded).
var (
	// ErrClosed is returned by a Node's methods once Shutdown has begun.
	ErrClosed error = &sentinel{"tether: node is shut down", serverapi.KindUnavailable}
	// ErrNoClient is returned by Disconnect when no client has the given id.
	ErrNoClient error = &sentinel{"tether: no such client", serverapi.KindNotFound}
	// ErrBadRequest refuses an argument: data that is not JSON, a negative
	// history limit, a broadcast with no channels or more than
	// MaxBroadcastChannels. Its *protocol.Error has code bad_request.
	ErrBadRequest = errors.New("tether: bad request")
	// ErrInvalidChannel refuses a channel name that is empty, longer than
	// Config.MaxChannelLength, or holds a space, a control character or
	// invalid UTF-8. Its *protocol.Error has code invalid_channel.
	ErrInvalidChannel = errors.New("tether: invalid channel")
	// ErrUnavailable is a failure of a backend (broker, history store): the
	// operation may be retried. The backend's own error is in the chain
	// (errors.Unwrap, errors.As); the server API answers unavailable (503,
	// UNAVAILABLE) with a generic message.
	ErrUnavailable error = &sentinel{"tether: a backend failed", serverapi.KindUnavailable}
	// ErrTooManyChannels refuses a publish that would create a channel while
	// the node holds Config.MaxChannels. Its *protocol.Error has code
	// too_many_channels.
	ErrTooManyChannels = errors.New("tether: too many channels")
)

// sentinel is an error of the node that is not a protocol refusal. It tells
// the server API its kind (serverapi.Kinded).
type sentinel struct {
	msg  string
	kind serverapi.Kind
}

func (e *sentinel) Error() string        { return e.msg }
func (e *sentinel) Kind() serverapi.Kind { return e.kind }

// refusal is a refused request: errors.Is finds its sentinel, errors.As its
// protocol error.
type refusal struct {
	sentinel error
	perr     *protocol.Error
}

func (e *refusal) Error() string   { return "tether: " + e.perr.Error() }
func (e *refusal) Unwrap() []error { return []error{e.sentinel, e.perr} }

// sentinelOf is the sentinel error of each protocol error code a Node's
// methods return.
var sentinelOf = map[string]error{
	protocol.ErrBadRequest:     ErrBadRequest,
	protocol.ErrInvalidChannel: ErrInvalidChannel,
	protocol.ErrTooManyChans:   ErrTooManyChannels,
}

// refuse wraps perr with the sentinel of its code.
func refuse(perr *protocol.Error) error {
	if s, ok := sentinelOf[perr.Code]; ok {
		return &refusal{s, perr}
	}
	return fmt.Errorf("tether: %w", perr)
}

// badRequest is a refusal with code bad_request.
func badRequest(format string, args ...any) error {
	return refuse(protocol.NewError(protocol.ErrBadRequest, format, args...))
}

// failure is a backend's failure during op: errors.Is finds ErrUnavailable,
// errors.As the backend's error and the protocol error the server API answers
// with (generic: the backend's own error stays in the server's log).
type failure struct {
	op    string
	cause error
}

func (e *failure) Error() string { return "tether: " + e.op + ": a backend failed: " + e.cause.Error() }
func (e *failure) Unwrap() []error {
	return []error{ErrUnavailable, protocol.NewError(protocol.ErrUnavailable, "a backend failed; try again"), e.cause}
}
