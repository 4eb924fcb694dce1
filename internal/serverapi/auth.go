package serverapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"

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
	return authorizeFrom(a, credentials, !a.hasKey && loopback(remote))
}

// authorizeFrom is authorize with credentials of either type and local
// saying whether the peer is on a loopback address.
func authorizeFrom[S string | []byte](a *API, credentials []S, local bool) error {
	if !a.hasKey {
		if local {
			return nil
		}
		return errLoopbackOnly
	}
	ok := 0
	for _, c := range credentials {
		const scheme = "bearer "
		if len(c) < len(scheme) || !hasPrefixFold(c, scheme) {
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

// hasPrefixFold reports whether s begins with prefix, a lower-case ASCII
// string, in any case.
func hasPrefixFold[S string | []byte](s S, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := range len(prefix) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
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
