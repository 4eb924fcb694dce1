// Package jwt is an auth.Authenticator for JSON Web Tokens: connection tokens
// (claims sub, exp, nbf, iat, aud, iss, info, channels) and subscription
// tokens (sub, channel, exp), signed with HS256 (a shared secret), RS256 or
// ES256 (PEM public keys, or keys from a JWKS URL).
//
// The algorithms are fixed by the configuration, never taken from the token:
// "none" is always refused, and so is an HS256 token when only public keys
// are configured (the algorithm-confusion attack). The package must not log
// or return tokens in its errors.
//
// Verification is the package's own (verify.go): the compact serialization
// only, the three algorithms above, claims decoded once into a typed struct.
// golang-jwt, which tether used before, cost 2.5 times as much per HS256
// token. A connection token verified once is remembered by its SHA-256 until
// its exp (at most Config.CacheTTL) when its algorithm is RS256 or ES256, so
// that a reconnect storm costs a hash per token instead of a signature check.
package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tetherhq/tether/auth"
)

// Config configures an Authenticator. At least one of HMACSecret, PublicKeys
// and JWKSURL must be set; several may be.
type Config struct {
	// HMACSecret verifies HS256 tokens.
	HMACSecret []byte
	// PublicKeys verify RS256 (*rsa.PublicKey) and ES256 (*ecdsa.PublicKey
	// on P-256) tokens, whatever their kid. ParsePublicKeyPEM reads one.
	PublicKeys []crypto.PublicKey
	// JWKSURL is a JSON Web Key Set whose RSA and P-256 keys verify RS256
	// and ES256 tokens by kid. It is fetched on first use and again when a
	// token names an unknown kid, at most once per JWKSRefetchInterval.
	JWKSURL string
	// JWKSRefetchInterval bounds how often the key set is fetched. Defaults
	// to 1 minute.
	JWKSRefetchInterval time.Duration
	// HTTPClient fetches the key set. Defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// Audience and Issuer, when set, must be the token's aud (one of them)
	// and iss.
	Audience string
	Issuer   string
	// AllowAnonymous lets a connection without a token (or with a token
	// without sub) in, as an anonymous identity. Defaults to false: such
	// connections are unauthorized.
	AllowAnonymous bool
	// CacheSize caps the RS256 and ES256 tokens whose identity is
	// remembered once verified, so that a token presented again (a
	// reconnect, a refresh with the same token) costs a hash instead of a
	// signature check (about 0.5 us instead of 30 us for RS256). HS256
	// tokens are not cached: their check costs about what the hash does.
	// Defaults to 65536; negative: no cache.
	CacheSize int
	// CacheTTL is how long a verified token is remembered at most (never
	// past its exp): a key removed from the JWKS admits its tokens for up to
	// this long. Defaults to 5 minutes.
	CacheTTL time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// The defaults of Config's cache.
const (
	defaultCacheSize = 1 << 16
	defaultCacheTTL  = 5 * time.Minute
)

// Authenticator verifies tokens. It implements auth.Authenticator and
// auth.ChannelAuthenticator and is safe for concurrent use.
type Authenticator struct {
	cfg     Config
	methods []string
	hmac    *hmacs             // nil without a secret
	rsa     []crypto.PublicKey // *rsa.PublicKey
	ec      []crypto.PublicKey // *ecdsa.PublicKey on P-256
	jwks    *keySet
	headers headers
	cache   *cache // nil: none
}

var (
	_ auth.Authenticator        = (*Authenticator)(nil)
	_ auth.ChannelAuthenticator = (*Authenticator)(nil)
)

// New returns an Authenticator, or an error naming what is wrong with cfg.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg}
	if a.cfg.Now == nil {
		a.cfg.Now = time.Now
	}
	if len(cfg.HMACSecret) > 0 {
		a.methods = append(a.methods, "HS256")
		a.hmac = newHMACs(slices.Clone(cfg.HMACSecret))
	}
	for _, k := range cfg.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			a.rsa = append(a.rsa, k)
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return nil, errors.New("jwt: an ECDSA key must be on P-256 (ES256)")
			}
			a.ec = append(a.ec, k)
		default:
			return nil, fmt.Errorf("jwt: unsupported public key type %T", k)
		}
	}
	if len(a.rsa) > 0 || cfg.JWKSURL != "" {
		a.methods = append(a.methods, "RS256")
	}
	if len(a.ec) > 0 || cfg.JWKSURL != "" {
		a.methods = append(a.methods, "ES256")
	}
	if len(a.methods) == 0 {
		return nil, errors.New("jwt: no key configured: set an HMAC secret, a public key or a JWKS URL")
	}
	if cfg.JWKSURL != "" {
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		every := cfg.JWKSRefetchInterval
		if every <= 0 {
			every = time.Minute
		}
		a.jwks = &keySet{url: cfg.JWKSURL, client: client, every: every, now: a.cfg.Now}
	}
	size, ttl := cfg.CacheSize, cfg.CacheTTL
	if size == 0 {
		size = defaultCacheSize
	}
	if ttl <= 0 {
		ttl = defaultCacheTTL
	}
	if len(a.rsa)+len(a.ec) > 0 || a.jwks != nil {
		a.cache = newCache(size, ttl)
	}
	return a, nil
}

// ParsePublicKeyPEM reads an RSA or P-256 ECDSA public key from PEM: a
// PUBLIC KEY (PKIX) or RSA PUBLIC KEY block, or a CERTIFICATE.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("jwt: no PEM block found")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		return k, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		return k, nil
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("jwt: unexpected PEM block %q", block.Type)
}

// IgnoresHeader implements auth.HeaderBlindAuthenticator: tokens are read
// from Credentials.Token only.
func (a *Authenticator) IgnoresHeader() {}

// Authenticate implements auth.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, c auth.Credentials) (*auth.Identity, error) {
	if c.Token == "" {
		if a.cfg.AllowAnonymous && !c.Refresh {
			return &auth.Identity{}, nil
		}
		return nil, fmt.Errorf("%w: no token", auth.ErrUnauthorized)
	}
	var key [sha256.Size]byte
	cached := a.cacheable(c.Token)
	if cached {
		key = hashOf(c.Token)
		if id, ok := a.cache.get(&key, a.cfg.Now()); ok {
			return id, nil
		}
	}
	cl, err := a.verify(ctx, c.Token)
	if err != nil {
		return nil, err
	}
	if cl.Subject == "" && (!a.cfg.AllowAnonymous || c.Refresh) {
		return nil, fmt.Errorf("%w: the token has no sub", auth.ErrUnauthorized)
	}
	if len(cl.Info) > 0 && !json.Valid(cl.Info) {
		return nil, fmt.Errorf("%w: info is not JSON", auth.ErrUnauthorized)
	}
	id := &auth.Identity{User: cl.Subject, Info: cl.Info, Channels: cl.Channels}
	if cl.ExpiresAt.Set {
		id.ExpiresAt = cl.ExpiresAt.Time
	}
	if cached && id.User != "" { // an anonymous identity depends on c.Refresh: not cached
		a.cache.put(&key, id, a.cfg.Now())
		cp := *id // the cached one is shared: never handed out
		return &cp, nil
	}
	return id, nil
}

// cacheable reports whether token's identity is looked for in the cache, and
// kept there once verified: with a cache, for a public-key algorithm.
func (a *Authenticator) cacheable(token string) bool {
	if a.cache == nil {
		return false
	}
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return false
	}
	hd, _, err := a.headers.decode(token[:i])
	return err == nil && hd.Alg != "HS256"
}

// AuthenticateChannel implements auth.ChannelAuthenticator: token must be
// valid, its sub id's user and its channel the channel.
func (a *Authenticator) AuthenticateChannel(ctx context.Context, id *auth.Identity, channel, token string) error {
	cl, err := a.verify(ctx, token)
	if err != nil {
		return err
	}
	if !id.Authenticated() || cl.Subject != id.User {
		return fmt.Errorf("%w: the subscription token is for another user", auth.ErrPermissionDenied)
	}
	if cl.Channel != channel {
		return fmt.Errorf("%w: the subscription token is for another channel", auth.ErrPermissionDenied)
	}
	return nil
}
