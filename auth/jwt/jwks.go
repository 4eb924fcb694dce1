package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/tetherhq/tether/auth"
)

// keySet is a JWKS URL's keys by kid, fetched on first use and again for an
// unknown kid, at most once per every. Its mutex is held across a fetch, so
// that concurrent connections with a new kid cause one fetch.
type keySet struct {
	url    string
	client *http.Client
	every  time.Duration
	now    func() time.Time

	mu      sync.Mutex
	keys    map[string]crypto.PublicKey
	fetched time.Time // last fetch attempt; zero: never
	fetches int       // for tests
}

// maxJWKSSize caps a key set's body.
const maxJWKSSize = 1 << 20

// key returns the key named kid, fetching the set if kid is unknown and the
// last fetch is older than every.
func (s *keySet) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	if !s.fetched.IsZero() && s.now().Sub(s.fetched) < s.every {
		return nil, fmt.Errorf("%w: unknown kid", auth.ErrUnauthorized)
	}
	s.fetched = s.now()
	s.fetches++
	keys, err := s.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching the key set: %w", auth.ErrUnauthorized, err)
	}
	s.keys = keys
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: unknown kid", auth.ErrUnauthorized)
}

func (s *keySet) fetch(ctx context.Context) (map[string]crypto.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
	if err != nil {
		return nil, err
	}
	return ParseJWKS(body)
}

// ParseJWKS reads the RSA and P-256 EC keys of a JSON Web Key Set, by kid.
// Keys of other types, curves or uses are skipped.
func ParseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := b64int(k.N)
			e, err2 := b64int(k.E)
			if err := errors.Join(err1, err2); err != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				continue
			}
			keys[k.Kid] = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := b64int(k.X)
			y, err2 := b64int(k.Y)
			if errors.Join(err1, err2) != nil {
				continue
			}
			pk := &ecdsa.PublicKey{Curve: elliptic.P256(), X: x, Y: y}
			if _, err := pk.ECDH(); err != nil { // not on the curve
				continue
			}
			keys[k.Kid] = pk
		}
	}
	return keys, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}
