package serverapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/tetherhq/tether/protocol"
)

// Kind is the class of a server API error. It decides the error's HTTP status
// and gRPC code, and the protocol error code of an error that carries none.
type Kind uint8

// The kinds of error, with their HTTP status and gRPC code.
const (
	// KindInternal: a fault of the server (500, INTERNAL).
	KindInternal Kind = iota
	// KindBadRequest: a request the caller can fix (400, INVALID_ARGUMENT).
	KindBadRequest
	// KindUnauthorized: no credential, a wrong one, or not from loopback when
	// the API has no key (401, UNAUTHENTICATED).
	KindUnauthorized
	// KindForbidden: the caller may not do this (403, PERMISSION_DENIED).
	KindForbidden
	// KindNotFound: what the request names does not exist, such as a client id
	// (404, NOT_FOUND).
	KindNotFound
	// KindTooLarge: a request body over the size limit (413, RESOURCE_EXHAUSTED).
	KindTooLarge
	// KindLimit: a node limit was reached, such as its number of channels
	// (400, RESOURCE_EXHAUSTED).
	KindLimit
	// KindRateLimited: too many requests (429, RESOURCE_EXHAUSTED).
	KindRateLimited
	// KindUnavailable: the node is shutting down (503, UNAVAILABLE).
	KindUnavailable
	// KindCanceled: the request's context was cancelled (499, CANCELED).
	KindCanceled
	// KindDeadline: the request's deadline passed (504, DEADLINE_EXCEEDED).
	KindDeadline
)

// statusClientClosed is the HTTP status of a request its client gave up on
// (nginx's 499); the client never reads it.
const statusClientClosed = 499

var kinds = [...]struct {
	name   string
	status int
	code   codes.Code
	proto  string // the protocol error code of an error that carries none
}{
	KindInternal:     {"internal", http.StatusInternalServerError, codes.Internal, protocol.ErrInternal},
	KindBadRequest:   {"bad request", http.StatusBadRequest, codes.InvalidArgument, protocol.ErrBadRequest},
	KindUnauthorized: {"unauthorized", http.StatusUnauthorized, codes.Unauthenticated, protocol.ErrUnauthorized},
	KindForbidden:    {"forbidden", http.StatusForbidden, codes.PermissionDenied, protocol.ErrPermission},
	KindNotFound:     {"not found", http.StatusNotFound, codes.NotFound, protocol.ErrBadRequest},
	KindTooLarge:     {"too large", http.StatusRequestEntityTooLarge, codes.ResourceExhausted, protocol.ErrBadRequest},
	KindLimit:        {"limit", http.StatusBadRequest, codes.ResourceExhausted, protocol.ErrTooManyChans},
	KindRateLimited:  {"rate limited", http.StatusTooManyRequests, codes.ResourceExhausted, protocol.ErrRateLimited},
	KindUnavailable:  {"unavailable", http.StatusServiceUnavailable, codes.Unavailable, protocol.ErrUnavailable},
	KindCanceled:     {"canceled", statusClientClosed, codes.Canceled, protocol.ErrUnavailable},
	KindDeadline:     {"deadline", http.StatusGatewayTimeout, codes.DeadlineExceeded, protocol.ErrUnavailable},
}

func (k Kind) valid() bool { return int(k) < len(kinds) }

// String returns the kind's name.
func (k Kind) String() string {
	if !k.valid() {
		return fmt.Sprintf("Kind(%d)", k)
	}
	return kinds[k].name
}

// HTTPStatus returns the HTTP status of an error of this kind.
func (k Kind) HTTPStatus() int {
	if !k.valid() {
		k = KindInternal
	}
	return kinds[k].status
}

// GRPCCode returns the gRPC code of an error of this kind.
func (k Kind) GRPCCode() codes.Code {
	if !k.valid() {
		k = KindInternal
	}
	return kinds[k].code
}

// Kinded is an error that says its own kind. Classify looks for one in an
// error's chain before anything else: a Backend's sentinel errors that are not
// *protocol.Error (such as "shut down" or "no such client") implement it.
type Kinded interface {
	error
	Kind() Kind
}

// kindByCode is the kind of a *protocol.Error, by its code. A code not listed
// is KindBadRequest: a protocol error is a refusal the caller can act on.
var kindByCode = map[string]Kind{
	protocol.ErrBadRequest:     KindBadRequest,
	protocol.ErrUnknownOp:      KindBadRequest,
	protocol.ErrInvalidChannel: KindBadRequest,
	protocol.ErrAlreadySub:     KindBadRequest,
	protocol.ErrNotSubscribed:  KindBadRequest,
	protocol.ErrTooManySubs:    KindLimit,
	protocol.ErrTooManyChans:   KindLimit,
	protocol.ErrUnauthorized:   KindUnauthorized,
	protocol.ErrPermission:     KindForbidden,
	protocol.ErrRateLimited:    KindRateLimited,
	protocol.ErrUnavailable:    KindUnavailable,
	protocol.ErrInternal:       KindInternal,
}

// Classify returns the kind of err, a non-nil error of a Backend or of the API
// itself, and the protocol error to answer with: the *protocol.Error in err's
// chain if there is one, else one with the kind's code and err's text.
//
// The kind is, in order: that of the first Kinded error in the chain; for
// context.Canceled and context.DeadlineExceeded, KindCanceled and
// KindDeadline; that of the *protocol.Error's code; else KindInternal.
func Classify(err error) (Kind, *protocol.Error) {
	var perr *protocol.Error
	hasPerr := errors.As(err, &perr)
	answer := func(k Kind) (Kind, *protocol.Error) {
		if hasPerr {
			return k, perr
		}
		return k, protocol.NewError(kinds[k].proto, "%v", err)
	}
	var kinded Kinded
	switch {
	case errors.As(err, &kinded) && kinded.Kind().valid():
		return answer(kinded.Kind())
	case errors.Is(err, context.Canceled):
		return answer(KindCanceled)
	case errors.Is(err, context.DeadlineExceeded):
		return answer(KindDeadline)
	case hasPerr:
		if k, ok := kindByCode[perr.Code]; ok {
			return k, perr
		}
		return KindBadRequest, perr
	}
	return answer(KindInternal)
}

// kindError is a protocol error of a given kind: the API's own refusals.
type kindError struct {
	kind Kind
	perr *protocol.Error
}

func (e *kindError) Error() string { return e.perr.Error() }
func (e *kindError) Kind() Kind    { return e.kind }
func (e *kindError) Unwrap() error { return e.perr }
