package main

import (
	"crypto"
	"errors"
	"fmt"
	"os"

	"github.com/tetherhq/tether/auth/jwt"
)

// authFlags are the token options of `tether serve`.
type authFlags struct {
	hmacSecret string
	publicKey  string // PEM file
	jwksURL    string
	audience   string
	issuer     string
}

// configured reports whether any token option is set: then connections must
// authenticate.
func (f *authFlags) configured() bool {
	return f.hmacSecret != "" || f.publicKey != "" || f.jwksURL != ""
}

// authenticator returns the JWT authenticator the flags describe.
func (f *authFlags) authenticator(allowAnonymous bool) (*jwt.Authenticator, error) {
	if !f.configured() {
		if f.audience != "" || f.issuer != "" {
			return nil, errors.New("--token-audience and --token-issuer need a token key: --token-hmac-secret, --token-public-key or --token-jwks-url")
		}
		return nil, nil
	}
	cfg := jwt.Config{
		HMACSecret:     []byte(f.hmacSecret),
		JWKSURL:        f.jwksURL,
		Audience:       f.audience,
		Issuer:         f.issuer,
		AllowAnonymous: allowAnonymous,
	}
	if f.hmacSecret != "" && len(f.hmacSecret) < 32 {
		return nil, errors.New("--token-hmac-secret must be at least 32 bytes")
	}
	if f.publicKey != "" {
		b, err := os.ReadFile(f.publicKey)
		if err != nil {
			return nil, fmt.Errorf("--token-public-key: %w", err)
		}
		k, err := jwt.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("--token-public-key %s: %w", f.publicKey, err)
		}
		cfg.PublicKeys = []crypto.PublicKey{k}
	}
	return jwt.New(cfg)
}
