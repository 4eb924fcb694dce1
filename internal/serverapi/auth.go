package serverapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"strings"

	"github.com/tetherhq/tether/protocol"
)

// The refusals of authorize. Their messages hold no credential, given or
// configured.
var (
	errLoopbackOnly = &kindError{KindUnauthorized, protocol.NewError(protocol.ErrUnauthorized,
		"no API key is configured: the API answers loopback clients only")}
	errWrongKey = &kindError{KindUnauthorized, protocol.NewError(protocol.ErrUnauthorized,
		"missing or wrong API key (Authorization: Bearer <key>)")}
)

// authorize is the server API's one access check, for HTTP, gRPC and what
// Guard wraps. With an API key configured, one of credentials (the
// Authorization header's or metadata's values) must be "Bearer <key>", the key
// compared in constant time; with none, remote (the peer's host:port) must be
// a loopback address. It returns nil or a KindUnauthorized error.
func (a *API) authorize(credentials []string, remote string) error {
	if !a.hasKey {
		if loopback(remote) {
			return nil
		}
		return errLoopbackOnly
	}
	ok := 0
	for _, c := range credentials {
		const scheme = "Bearer "
		if len(c) < len(scheme) || !strings.EqualFold(c[:len(scheme)], scheme) {
			continue
		}
		sum := sha256.Sum256([]byte(c[len(scheme):]))
		ok |= subtle.ConstantTimeCompare(sum[:], a.keySum[:])
	}
	if ok != 1 {
		return errWrongKey
	}
	return nil
}

// loopback reports whether hostport is a loopback IP address and port.
func loopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
