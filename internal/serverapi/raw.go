package serverapi

import (
	"context"

	"github.com/tetherhq/tether/protocol"
)

// RawAnswer is what ServeRaw answers.
type RawAnswer struct {
	// Status is the HTTP status.
	Status int
	// Challenge says the answer is a 401 for a missing or wrong API key: the
	// response carries WWW-Authenticate, as Routes' does.
	Challenge bool
	// Body is the JSON answer and a newline, appended to ServeRaw's dst.
	Body []byte
}

// RawLimit returns the largest body the POST endpoint at path takes, and
// false when path is not one of the endpoints ServeRaw serves.
func (a *API) RawLimit(path []byte) (int64, bool) {
	rt, ok := a.posts[string(path)]
	if !ok {
		return 0, false
	}
	return rt.limit, true
}

// ServeRaw serves a POST to path whose body is in memory, as Routes' handler
// does, for a server that reads HTTP requests itself: credentials are the
// request's Authorization values and local says whether the peer is on a
// loopback address. Call it only for a path RawLimit knows and a body within
// its limit. The answer's body is appended to dst.
func (a *API) ServeRaw(ctx context.Context, path []byte, credentials [][]byte, local bool, body, dst []byte) RawAnswer {
	if err := authorizeFrom(a, credentials, local); err != nil {
		status, b := appendError(dst, err)
		return RawAnswer{Status: status, Challenge: err == errWrongKey, Body: b}
	}
	rt, ok := a.posts[string(path)]
	if !ok {
		status, b := appendError(dst, &kindError{KindNotFound, protocol.NewError(protocol.ErrBadRequest, "no endpoint POST %q", path)})
		return RawAnswer{Status: status, Body: b}
	}
	if int64(len(body)) > rt.limit {
		status, b := appendError(dst, errTooLarge(rt.limit))
		return RawAnswer{Status: status, Body: b}
	}
	status, b := rt.answer(ctx, body, dst)
	return RawAnswer{Status: status, Body: b}
}
