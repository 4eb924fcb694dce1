package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth"
)

// TestVerifyTable: the verifier's answer to each kind of token, with the
// cache off and on (a token refused once is refused again; one accepted
// once is accepted again).
func TestVerifyTable(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	secret := []byte("s3cret")
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	sign := func(m gojwt.SigningMethod, key any, c gojwt.MapClaims) string {
		s, err := gojwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs := func(c gojwt.MapClaims) string { return sign(gojwt.SigningMethodHS256, secret, c) }
	valid := hs(gojwt.MapClaims{"sub": "ann", "exp": exp})
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	forged := parts[0] + "." + enc([]byte(`{"sub":"root","exp":9999999999}`)) + "." + parts[2]
	keys := Config{
		HMACSecret: secret,
		PublicKeys: []crypto.PublicKey{&rk.PublicKey, &ek.PublicKey},
		Audience:   "app", Issuer: "idp",
	}
	aud := func(c gojwt.MapClaims) gojwt.MapClaims { c["aud"], c["iss"] = "app", "idp"; return c }
	tests := []struct {
		name  string
		cfg   Config
		token string
		user  string // "": refused with want
		want  error
	}{
		{"hs256", Config{HMACSecret: secret}, valid, "ann", nil},
		{"fractional exp", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann", "exp": float64(exp) + 0.5}), "ann", nil},
		{"no exp", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann"}), "ann", nil},
		{"expired", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann", "exp": now.Add(-time.Second).Unix()}), "", auth.ErrTokenExpired},
		{"not yet valid", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann", "exp": exp, "nbf": now.Add(time.Minute).Unix()}), "", auth.ErrUnauthorized},
		{"issued in the future", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann", "exp": exp, "iat": now.Add(time.Minute).Unix()}), "", auth.ErrUnauthorized},
		{"exp not a number", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": "ann", "exp": "tomorrow"}), "", auth.ErrUnauthorized},
		{"sub not a string", Config{HMACSecret: secret}, hs(gojwt.MapClaims{"sub": 7, "exp": exp}), "", auth.ErrUnauthorized},
		{"wrong secret", Config{HMACSecret: []byte("other")}, valid, "", auth.ErrUnauthorized},
		{"forged payload", Config{HMACSecret: secret}, forged, "", auth.ErrUnauthorized},
		{"alg none", Config{HMACSecret: secret}, none, "", auth.ErrUnauthorized},
		{"hs token against an rs key", Config{PublicKeys: []crypto.PublicKey{&rk.PublicKey}}, sign(gojwt.SigningMethodHS256, rsaPEM, gojwt.MapClaims{"sub": "ann", "exp": exp}), "", auth.ErrUnauthorized},
		{"rs token against a secret", Config{HMACSecret: secret}, sign(gojwt.SigningMethodRS256, rk, gojwt.MapClaims{"sub": "ann", "exp": exp}), "", auth.ErrUnauthorized},
		{"rs256", keys, sign(gojwt.SigningMethodRS256, rk, aud(gojwt.MapClaims{"sub": "ann", "exp": exp})), "ann", nil},
		{"es256", keys, sign(gojwt.SigningMethodES256, ek, aud(gojwt.MapClaims{"sub": "ann", "exp": exp})), "ann", nil},
		{"es256 by another key", keys, sign(gojwt.SigningMethodES256, otherEC, aud(gojwt.MapClaims{"sub": "ann", "exp": exp})), "", auth.ErrUnauthorized},
		{"rs384", keys, sign(gojwt.SigningMethodRS384, rk, aud(gojwt.MapClaims{"sub": "ann", "exp": exp})), "", auth.ErrUnauthorized},
		{"aud in a list", keys, sign(gojwt.SigningMethodRS256, rk, gojwt.MapClaims{"sub": "ann", "exp": exp, "aud": []string{"x", "app"}, "iss": "idp"}), "ann", nil},
		{"wrong aud", keys, sign(gojwt.SigningMethodRS256, rk, gojwt.MapClaims{"sub": "ann", "exp": exp, "aud": "x", "iss": "idp"}), "", auth.ErrUnauthorized},
		{"no aud", keys, sign(gojwt.SigningMethodRS256, rk, gojwt.MapClaims{"sub": "ann", "exp": exp, "iss": "idp"}), "", auth.ErrUnauthorized},
		{"wrong iss", keys, sign(gojwt.SigningMethodRS256, rk, gojwt.MapClaims{"sub": "ann", "exp": exp, "aud": "app", "iss": "x"}), "", auth.ErrUnauthorized},
		{"two parts", Config{HMACSecret: secret}, parts[0] + "." + parts[1], "", auth.ErrUnauthorized},
		{"four parts", Config{HMACSecret: secret}, valid + ".x", "", auth.ErrUnauthorized},
		{"bad base64", Config{HMACSecret: secret}, parts[0] + "." + parts[1] + ".!!", "", auth.ErrUnauthorized},
		{"padded signature", Config{HMACSecret: secret}, valid + "=", "", auth.ErrUnauthorized},
		{"huge", Config{HMACSecret: secret}, strings.Repeat("a", maxTokenSize+1), "", auth.ErrUnauthorized},
	}
	for _, size := range []int{-1, 0} {
		for _, tt := range tests {
			cfg := tt.cfg
			cfg.CacheSize = size
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				id, err := a.Authenticate(context.Background(), auth.Credentials{Token: tt.token})
				switch {
				case tt.user != "" && (err != nil || id.User != tt.user):
					t.Errorf("%s (cache %d, round %d): %v, %v; want %s", tt.name, size, round, id, err, tt.user)
				case tt.user == "" && !errors.Is(err, tt.want):
					t.Errorf("%s (cache %d, round %d): %v, %v; want %v", tt.name, size, round, id, err, tt.want)
				}
			}
		}
	}
}

// TestCacheExpiry: a cached token stops being accepted at its exp and past
// the cache's TTL, and the identity handed out is the caller's own. (HS256
// tokens are not cached: an ES256 key here.)
func TestCacheExpiry(t *testing.T) {
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	a, _ := New(Config{PublicKeys: []crypto.PublicKey{&ek.PublicKey}, CacheTTL: time.Minute, Now: clock})
	sign := func(c gojwt.MapClaims) string {
		s, _ := gojwt.NewWithClaims(gojwt.SigningMethodES256, c).SignedString(ek)
		return s
	}
	short := sign(gojwt.MapClaims{"sub": "ann", "exp": now.Add(30 * time.Second).Unix(), "channels": []string{"a"}})
	long := sign(gojwt.MapClaims{"sub": "bob", "exp": now.Add(time.Hour).Unix()})
	ctx := context.Background()
	for _, tok := range []string{short, long} {
		if _, err := a.Authenticate(ctx, auth.Credentials{Token: tok}); err != nil {
			t.Fatal(err)
		}
	}
	id, err := a.Authenticate(ctx, auth.Credentials{Token: short}) // from the cache
	if err != nil {
		t.Fatal(err)
	}
	id.User, id.Channels[0] = "mallory", "b" // the caller's copy; Channels are shared and must be cloned to change
	id.Channels = append(id.Channels, "c")
	if id2, err := a.Authenticate(ctx, auth.Credentials{Token: short}); err != nil || id2.User != "ann" {
		t.Fatalf("after the caller changed its identity: %+v, %v", id2, err)
	}
	advance(31 * time.Second)
	if _, err := a.Authenticate(ctx, auth.Credentials{Token: short}); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("cached token past its exp: %v", err)
	}
	if _, ok := a.cache.get(ptr(hashOf(long)), clock()); !ok {
		t.Fatal("the long token is not cached")
	}
	advance(time.Minute)
	if _, ok := a.cache.get(ptr(hashOf(long)), clock()); ok {
		t.Fatal("the long token is cached past the TTL")
	}
	if id, err := a.Authenticate(ctx, auth.Credentials{Token: long}); err != nil || id.User != "bob" {
		t.Fatalf("the long token past the cache TTL: %+v, %v", id, err)
	}
}

// TestCacheBounded: the cache keeps about its size, however many tokens.
func TestCacheBounded(t *testing.T) {
	c := newCache(64, time.Minute)
	now := time.Now()
	for i := range 10_000 {
		c.put(ptr(hashOf(string(rune(i)))), &auth.Identity{User: "u"}, now)
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].cur) + len(c.shards[i].prev)
	}
	if n > 64 {
		t.Fatalf("%d entries cached, want at most 64", n)
	}
}

func TestAnonymousNotCachedForRefresh(t *testing.T) {
	secret := []byte("k")
	a, _ := New(Config{HMACSecret: secret, AllowAnonymous: true})
	tok, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
	if id, err := a.Authenticate(context.Background(), auth.Credentials{Token: tok}); err != nil || id.User != "" {
		t.Fatalf("anonymous connect: %+v, %v", id, err)
	}
	if _, err := a.Authenticate(context.Background(), auth.Credentials{Token: tok, Refresh: true}); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("refresh with a token without sub: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
