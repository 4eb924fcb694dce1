package serverapi

import "context"

// RawAnswer is what RawRoute.Serve answers.
type RawAnswer struct {
	// Status is the HTTP status.
	Status int
	// Challenge says the answer is a 401 for a missing or wrong API key: the
	// response carries WWW-Authenticate, as Routes' does.
	Challenge bool
	// Body is the JSON answer and a newline, appended to Serve's dst.
	Body []byte
}

// RawRoute is one POST endpoint of the API, for a server that reads HTTP
// requests itself.
type RawRoute struct {
	a  *API
	rt *route
}

// RawRoute returns the POST endpoint at path, and false when path is not one
// of the endpoints with a JSON body (Routes serves the others).
func (a *API) RawRoute(path []byte) (RawRoute, bool) {
	rt, ok := a.posts[string(path)]
	return RawRoute{a, rt}, ok
}

// Limit returns the largest body the endpoint takes.
func (r RawRoute) Limit() int64 { return r.rt.limit }

// Serve answers a POST to the endpoint whose body is in memory, as Routes'
// handler does: credentials are the request's Authorization values and local
// says whether the peer is on a loopback address. The answer's body is
// appended to dst.
func (r RawRoute) Serve(ctx context.Context, credentials [][]byte, local bool, body, dst []byte) RawAnswer {
	if err := authorizeFrom(r.a, credentials, local); err != nil {
		status, b := appendError(dst, err)
		return RawAnswer{Status: status, Challenge: err == errWrongKey, Body: b}
	}
	if int64(len(body)) > r.rt.limit {
		status, b := appendError(dst, errTooLarge(r.rt.limit))
		return RawAnswer{Status: status, Body: b}
	}
	status, b := r.rt.answer(ctx, body, dst)
	return RawAnswer{Status: status, Body: b}
}
