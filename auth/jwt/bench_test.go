package jwt

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth"
)

// BenchmarkAuthenticate: the cost of verifying one connection token.
func BenchmarkAuthenticate(b *testing.B) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	claims := gojwt.MapClaims{"sub": "ann", "exp": time.Now().Add(time.Hour).Unix()}
	hsTok, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, claims).SignedString([]byte("k"))
	rsTok, _ := gojwt.NewWithClaims(gojwt.SigningMethodRS256, claims).SignedString(rk)
	hs, _ := New(Config{HMACSecret: []byte("k")})
	rs, _ := New(Config{PublicKeys: []crypto.PublicKey{&rk.PublicKey}})
	for _, c := range []struct {
		name  string
		a     *Authenticator
		token string
	}{{"HS256", hs, hsTok}, {"RS256", rs, rsTok}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.a.Authenticate(context.Background(), auth.Credentials{Token: c.token}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
