package jwt

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"strconv"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth"
)

// BenchmarkAuthenticate: the cost of verifying one connection token, first
// seen (a new token each time: the signature is checked) and seen again (the
// cache, RS256 only: HS256 is checked again), against golang-jwt's parse with
// typed claims, as tether did before.
func BenchmarkAuthenticate(b *testing.B) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	const n = 1 << 12 // distinct tokens, so that "first" never hits the cache
	tokens := func(m gojwt.SigningMethod, key any) []string {
		toks := make([]string, n)
		for i := range toks {
			toks[i], _ = gojwt.NewWithClaims(m, gojwt.MapClaims{"sub": "user-" + strconv.Itoa(i), "exp": exp}).SignedString(key)
		}
		return toks
	}
	hsToks := tokens(gojwt.SigningMethodHS256, []byte("k"))
	rsToks := tokens(gojwt.SigningMethodRS256, rk)
	for _, c := range []struct {
		name   string
		cfg    Config
		tokens []string
		key    any
	}{
		{"HS256", Config{HMACSecret: []byte("k")}, hsToks, []byte("k")},
		{"RS256", Config{PublicKeys: []crypto.PublicKey{&rk.PublicKey}}, rsToks, &rk.PublicKey},
	} {
		b.Run(c.name+"/golang-jwt", func(b *testing.B) {
			p := gojwt.NewParser(gojwt.WithValidMethods([]string{c.name}), gojwt.WithIssuedAt())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var cl struct {
					gojwt.RegisteredClaims
					Channels []string `json:"channels"`
				}
				if _, err := p.ParseWithClaims(c.tokens[i%n], &cl, func(*gojwt.Token) (any, error) { return c.key, nil }); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		uncached := c.cfg
		uncached.CacheSize = -1
		a, _ := New(uncached)
		b.Run(c.name+"/first", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := a.Authenticate(context.Background(), auth.Credentials{Token: c.tokens[i%n]}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		cached, _ := New(c.cfg)
		b.Run(c.name+"/again", func(b *testing.B) {
			for _, tok := range c.tokens {
				if _, err := cached.Authenticate(context.Background(), auth.Credentials{Token: tok}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := cached.Authenticate(context.Background(), auth.Credentials{Token: c.tokens[i%n]}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
