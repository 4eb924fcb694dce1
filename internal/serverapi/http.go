package serverapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/tetherhq/tether/internal/jsontext"
	"github.com/tetherhq/tether/protocol"
)

// Guard serves h to the callers authorize admits and answers the others 401,
// as the API itself does.
func (a *API) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authorizeHTTP(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// authorizeHTTP runs authorize on r and answers a refusal; it reports whether
// r may go on.
func (a *API) authorizeHTTP(w http.ResponseWriter, r *http.Request) bool {
	err := a.authorize(r.Header.Values("Authorization"), r.RemoteAddr)
	if err == nil {
		return true
	}
	if err == errWrongKey {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
	}
	writeError(w, err)
	return false
}

// route is one POST endpoint of the API: the largest body it takes and what
// answers a body.
type route struct {
	limit int64
	// answer decodes body, does the work and appends the JSON answer (and a
	// newline) to dst; it returns the status and the answer.
	answer func(ctx context.Context, body, dst []byte) (int, []byte)
}

// newRoute is the endpoint that decodes a body of at most limit bytes into a
// fresh T, calls do and answers do's result as JSON, or its error as Classify
// says.
func newRoute[T any](limit int64, do func(context.Context, *T) (any, error)) *route {
	return &route{limit: limit, answer: func(ctx context.Context, body, dst []byte) (int, []byte) {
		var req T
		if err := decode(body, &req); err != nil {
			return appendError(dst, err)
		}
		res, err := do(ctx, &req)
		if err != nil {
			return appendError(dst, err)
		}
		return appendJSON(dst, http.StatusOK, res)
	}}
}

// handler serves rt over net/http: it authorizes the caller, reads the body
// (at most rt.limit bytes) and answers.
func (a *API) handler(rt *route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.authorizeHTTP(w, r) {
			return
		}
		bp := bodies.Get().(*[]byte)
		defer putBody(bp)
		var err error
		*bp, err = readAll((*bp)[:0], http.MaxBytesReader(w, r.Body, rt.limit))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, errTooLarge(rt.limit))
				return
			}
			writeError(w, protocol.NewError(protocol.ErrBadRequest, "reading the body: %v", err))
			return
		}
		out := bodies.Get().(*[]byte)
		defer putBody(out)
		var status int
		status, *out = rt.answer(r.Context(), *bp, (*out)[:0])
		write(w, status, *out)
	}
}

// errTooLarge refuses a body larger than limit bytes.
func errTooLarge(limit int64) error {
	return &kindError{KindTooLarge, protocol.NewError(protocol.ErrBadRequest, "body is larger than %d bytes", limit)}
}

// bodies holds the buffers request bodies are read into and answers are
// written into; decoded requests keep nothing of them (json.Unmarshal copies
// strings and RawMessages).
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody is the largest buffer put back into bodies.
const maxPooledBody = 64 << 10

// putBody gives bp back to bodies, unless it grew too large to keep.
func putBody(bp *[]byte) {
	if cap(*bp) <= maxPooledBody {
		bodies.Put(bp)
	}
}

// decode decodes the JSON body into v.
func decode(body []byte, v any) error {
	if q, ok := v.(quickDecoder); ok && q.decodeQuick(body) {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return protocol.NewError(protocol.ErrBadRequest, "malformed JSON body: %v", err)
	}
	return nil
}

// readAll appends what r holds to b, as io.ReadAll does into a new slice.
func readAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// errorBody is the body of every error response: {"error":{"code","message"}}.
type errorBody struct {
	Error *protocol.Error `json:"error"`
}

// writeError answers err with the status of its kind and its protocol error.
func writeError(w http.ResponseWriter, err error) {
	bp := bodies.Get().(*[]byte)
	defer putBody(bp)
	var status int
	status, *bp = appendError((*bp)[:0], err)
	write(w, status, *bp)
}

// writeJSON answers v as JSON, followed by a newline.
func writeJSON(w http.ResponseWriter, status int, v any) {
	bp := bodies.Get().(*[]byte)
	defer putBody(bp)
	status, *bp = appendJSON((*bp)[:0], status, v)
	write(w, status, *bp)
}

// write answers body, a JSON document, with status.
func write(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// appendError appends err's answer, {"error":{"code","message"}}, and a
// newline to b; it returns the status of err's kind and b.
func appendError(b []byte, err error) (int, []byte) {
	kind, perr := Classify(err)
	return appendJSON(b, kind.HTTPStatus(), errorBody{perr})
}

// appendJSON appends v as JSON and a newline to b; it returns status, or 500
// when v cannot be encoded, and b.
func appendJSON(b []byte, status int, v any) (int, []byte) {
	if pos, ok := v.(protocol.Position); ok { // a publish's answer: the hot path
		b = appendPosition(b, pos)
	} else {
		enc, err := json.Marshal(v)
		if err != nil {
			status, enc = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"cannot encode the answer"}}`)
		}
		b = append(b, enc...)
	}
	return status, append(b, '\n')
}

// appendPosition appends {"epoch":...,"offset":N}, as json.Marshal would.
func appendPosition(b []byte, pos protocol.Position) []byte {
	b = append(b, `{"epoch":`...)
	b = jsontext.AppendString(b, pos.Epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, pos.Offset, 10)
	return append(b, '}')
}

type publishRequest struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// publish serves POST /api/publish {"channel","data"} -> {"epoch","offset"}.
func (a *API) publish(ctx context.Context, req *publishRequest) (any, error) {
	if len(req.Data) == 0 {
		return nil, errNoData
	}
	return a.b.Publish(ctx, req.Channel, req.Data)
}

type broadcastRequest struct {
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// broadcast serves POST /api/broadcast {"channels","data"} -> {"results"}.
func (a *API) broadcast(ctx context.Context, req *broadcastRequest) (any, error) {
	if len(req.Data) == 0 {
		return nil, errNoData
	}
	res, err := a.b.Broadcast(ctx, req.Channels, req.Data)
	if err != nil {
		return nil, err
	}
	return struct {
		Results []BroadcastResult `json:"results"`
	}{res}, nil
}

type historyRequest struct {
	Channel string             `json:"channel"`
	Since   *protocol.Position `json:"since"`
	Limit   int                `json:"limit"`
}

// history serves POST /api/history {"channel","since","limit"} ->
// {"epoch","offset","publications"}.
func (a *API) history(ctx context.Context, req *historyRequest) (any, error) {
	return a.b.History(ctx, req.Channel, req.Since, req.Limit)
}

type disconnectRequest struct {
	Client    string `json:"client"`
	User      string `json:"user"`
	Reconnect bool   `json:"reconnect"`
}

// disconnect serves POST /api/disconnect {"client","reconnect"} -> {}, and
// {"user","reconnect"} -> {"disconnected":n}.
func (a *API) disconnect(ctx context.Context, req *disconnectRequest) (any, error) {
	switch {
	case (req.Client == "") == (req.User == ""):
		return nil, errNoClient
	case req.User != "":
		n, err := a.b.DisconnectUser(ctx, req.User, req.Reconnect)
		if err != nil {
			return nil, err
		}
		return struct {
			Disconnected int `json:"disconnected"`
		}{n}, nil
	}
	return struct{}{}, a.b.Disconnect(ctx, req.Client, req.Reconnect)
}

type unsubscribeRequest struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
}

// unsubscribe serves POST /api/unsubscribe {"user","channel"} ->
// {"unsubscribed":n}.
func (a *API) unsubscribe(ctx context.Context, req *unsubscribeRequest) (any, error) {
	if req.User == "" {
		return nil, errNoUser
	}
	n, err := a.b.Unsubscribe(ctx, req.User, req.Channel)
	if err != nil {
		return nil, err
	}
	return struct {
		Unsubscribed int `json:"unsubscribed"`
	}{n}, nil
}

// info serves GET or POST /api/info -> the Backend's Info. A POST's body is
// not read.
func (a *API) info(w http.ResponseWriter, r *http.Request) {
	if a.authorizeHTTP(w, r) {
		writeJSON(w, http.StatusOK, a.b.Info())
	}
}
