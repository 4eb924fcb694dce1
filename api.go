package tether

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/tetherhq/tether/protocol"
)

// apiError is the body of every API error response.
type apiError struct {
	Error *protocol.Error `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeAPIError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, apiError{protocol.NewError(code, format, args...)})
}

// authorized checks the API key; with none configured it admits loopback peers
// only.
func (n *Node) authorized(w http.ResponseWriter, r *http.Request) bool {
	if n.cfg.APIKey == "" {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
			return true
		}
		writeAPIError(w, http.StatusUnauthorized, protocol.ErrUnauthorized, "no API key is configured: the API answers loopback clients only")
		return false
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(key), []byte(n.cfg.APIKey)) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tether"`)
		writeAPIError(w, http.StatusUnauthorized, protocol.ErrUnauthorized, "missing or wrong API key (Authorization: Bearer <key>)")
		return false
	}
	return true
}

// decodeAPI reads a JSON request body of at most MaxMessageSize bytes into v.
func (n *Node) decodeAPI(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(n.cfg.MaxMessageSize)))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeAPIError(w, http.StatusRequestEntityTooLarge, protocol.ErrBadRequest, "body is larger than %d bytes", n.cfg.MaxMessageSize)
			return false
		}
		writeAPIError(w, http.StatusBadRequest, protocol.ErrBadRequest, "malformed JSON body: %v", err)
		return false
	}
	return true
}

type publishRequest struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// apiHandler serves one server API endpoint: it checks the key, decodes the
// JSON body into a fresh T, calls do and answers do's result as JSON, or its
// error with the status that fits (writeNodeError).
func apiHandler[T any](n *Node, do func(*T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.authorized(w, r) {
			return
		}
		var req T
		if !n.decodeAPI(w, r, &req) {
			return
		}
		res, err := do(&req)
		if err != nil {
			writeNodeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// errNoData is the reply to a publish or broadcast without data.
var errNoData = protocol.NewError(protocol.ErrBadRequest, "data is required")

// apiPublish serves POST /api/publish {"channel","data"} -> {"epoch","offset"}.
func (n *Node) apiPublish(req *publishRequest) (any, error) {
	if len(req.Data) == 0 {
		return nil, errNoData
	}
	return n.Publish(req.Channel, req.Data) // refuses after Shutdown, like the other endpoints
}
