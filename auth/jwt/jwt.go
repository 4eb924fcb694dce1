// Package jwt is an auth.Authenticator for JSON Web Tokens: connection tokens
// (claims sub, exp, nbf, iat, aud, iss, info, channels) and subscription
// tokens (sub, channel, exp), signed with HS256 (a shared secret), RS256 or
// ES256 (PEM public keys, or keys from a JWKS URL).
//
// The algorithms are fixed by the configuration, never taken from the token:
// "none" is always refused, and so is an HS256 token when only public keys
// are configured (the algorithm-confusion attack). The package must not log
// or return tokens in its errors.
package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

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
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// Authenticator verifies tokens. It implements auth.Authenticator and
// auth.ChannelAuthenticator and is safe for concurrent use.
type Authenticator struct {
	cfg     Config
	methods []string
	rsa     []gojwt.VerificationKey // *rsa.PublicKey
	ec      []gojwt.VerificationKey // *ecdsa.PublicKey on P-256
	jwks    *keySet
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

// Claims are the claims tether reads from a token.
type Claims struct {
	gojwt.RegisteredClaims
	// Info is any JSON, shown to others as the user's info.
	Info json.RawMessage `json:"info,omitempty"`
	// Channels are channels a connection token grants.
	Channels []string `json:"channels,omitempty"`
	// Channel is the channel a subscription token grants.
	Channel string `json:"channel,omitempty"`
}

// Authenticate implements auth.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, c auth.Credentials) (*auth.Identity, error) {
	if c.Token == "" {
		if a.cfg.AllowAnonymous && !c.Refresh {
			return &auth.Identity{}, nil
		}
		return nil, fmt.Errorf("%w: no token", auth.ErrUnauthorized)
	}
	cl, err := a.parse(ctx, c.Token)
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
	if cl.ExpiresAt != nil {
		id.ExpiresAt = cl.ExpiresAt.Time
	}
	return id, nil
}

// AuthenticateChannel implements auth.ChannelAuthenticator: token must be
// valid, its sub id's user and its channel the channel.
func (a *Authenticator) AuthenticateChannel(ctx context.Context, id *auth.Identity, channel, token string) error {
	cl, err := a.parse(ctx, token)
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

// parse verifies token and returns its claims. Errors wrap
// auth.ErrTokenExpired or auth.ErrUnauthorized, and never hold the token.
func (a *Authenticator) parse(ctx context.Context, token string) (*Claims, error) {
	opts := []gojwt.ParserOption{
		gojwt.WithValidMethods(a.methods),
		gojwt.WithTimeFunc(a.cfg.Now),
		gojwt.WithIssuedAt(),
	}
	if a.cfg.Audience != "" {
		opts = append(opts, gojwt.WithAudience(a.cfg.Audience))
	}
	if a.cfg.Issuer != "" {
		opts = append(opts, gojwt.WithIssuer(a.cfg.Issuer))
	}
	var cl Claims
	_, err := gojwt.ParseWithClaims(token, &cl, func(t *gojwt.Token) (any, error) { return a.key(ctx, t) }, opts...)
	switch {
	case err == nil:
		return &cl, nil
	case errors.Is(err, gojwt.ErrTokenExpired):
		return nil, fmt.Errorf("%w: exp is past", auth.ErrTokenExpired)
	}
	return nil, fmt.Errorf("%w: %s", auth.ErrUnauthorized, reason(err))
}

// reason says why a token was refused, without quoting it.
func reason(err error) string {
	for _, e := range []error{
		gojwt.ErrTokenMalformed, gojwt.ErrTokenUnverifiable, gojwt.ErrTokenSignatureInvalid,
		gojwt.ErrTokenInvalidAudience, gojwt.ErrTokenInvalidIssuer, gojwt.ErrTokenNotValidYet,
		gojwt.ErrTokenUsedBeforeIssued, gojwt.ErrTokenInvalidClaims,
	} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return "invalid token"
}

// key returns the keys that may verify t: its method is one of a.methods
// (the parser checked), so an HS256 token only ever meets the secret.
func (a *Authenticator) key(ctx context.Context, t *gojwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	switch t.Method.Alg() {
	case "HS256":
		return a.cfg.HMACSecret, nil
	case "RS256":
		return a.keySet(ctx, kid, a.rsa, func(k crypto.PublicKey) bool { _, ok := k.(*rsa.PublicKey); return ok })
	case "ES256":
		return a.keySet(ctx, kid, a.ec, func(k crypto.PublicKey) bool { _, ok := k.(*ecdsa.PublicKey); return ok })
	}
	return nil, errors.New("unexpected signing method")
}

// keySet returns the configured keys of one type and the JWKS key named kid
// if it is of that type (fits).
func (a *Authenticator) keySet(ctx context.Context, kid string, static []gojwt.VerificationKey, fits func(crypto.PublicKey) bool) (any, error) {
	keys := gojwt.VerificationKeySet{Keys: slices.Clip(static)} // appended to per token: never into static
	if a.jwks != nil {
		k, err := a.jwks.key(ctx, kid)
		switch {
		case err == nil && fits(k):
			keys.Keys = append(keys.Keys, k)
		case err != nil && len(keys.Keys) == 0:
			return nil, err
		}
	}
	return keys, nil
}
