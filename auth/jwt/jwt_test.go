package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth"
)

func ecJWKS(kid string, k *ecdsa.PublicKey) []byte {
	b64 := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.FillBytes(make([]byte, 32))) }
	b, _ := json.Marshal(map[string]any{"keys": []any{
		map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "x": b64(k.X), "y": b64(k.Y)},
		map[string]string{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, // skipped: not a public key
	}})
	return b
}

// TestJWKSRefetchLimited: an unknown kid fetches the key set at most once
// per interval, however many connections ask at once; past the interval a
// rotated key is found.
func TestJWKSRefetchLimited(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var set atomic.Value
	set.Store(ecJWKS("k1", &k1.PublicKey))
	var fetches atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(set.Load().([]byte))
	}))
	defer srv.Close()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, err := New(Config{JWKSURL: srv.URL, JWKSRefetchInterval: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(k *ecdsa.PrivateKey, kid string) string {
		tk := gojwt.NewWithClaims(gojwt.SigningMethodES256, gojwt.MapClaims{"sub": "ann", "exp": now.Add(time.Hour).Unix()})
		tk.Header["kid"] = kid
		s, _ := tk.SignedString(k)
		return s
	}
	ctx := context.Background()
	if id, err := a.Authenticate(ctx, auth.Credentials{Token: tok(k1, "k1")}); err != nil || id.User != "ann" {
		t.Fatalf("k1: %v, %v", id, err)
	}
	set.Store(ecJWKS("k2", &k2.PublicKey))
	var wg sync.WaitGroup
	for range 20 { // within the interval: refused, with no new fetch
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Authenticate(ctx, auth.Credentials{Token: tok(k2, "k2")}); !errors.Is(err, auth.ErrUnauthorized) {
				t.Errorf("k2 within the interval: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches within the interval, want 1", n)
	}
	mu.Lock()
	now = now.Add(time.Minute + time.Second)
	mu.Unlock()
	if id, err := a.Authenticate(ctx, auth.Credentials{Token: tok(k2, "k2")}); err != nil || id.User != "ann" {
		t.Fatalf("k2 after the interval: %v, %v", id, err)
	}
	if _, err := a.Authenticate(ctx, auth.Credentials{Token: tok(k2, "k3")}); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("unknown k3: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// TestSubscriptionToken: a subscription token grants its channel to its
// user only.
func TestSubscriptionToken(t *testing.T) {
	secret := []byte("k")
	a, _ := New(Config{HMACSecret: secret})
	sign := func(c gojwt.MapClaims) string {
		s, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, c).SignedString(secret)
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	ann := &auth.Identity{User: "ann"}
	tests := []struct {
		name  string
		id    *auth.Identity
		token string
		want  error
	}{
		{"valid", ann, sign(gojwt.MapClaims{"sub": "ann", "channel": "private:x", "exp": exp}), nil},
		{"other channel", ann, sign(gojwt.MapClaims{"sub": "ann", "channel": "private:y", "exp": exp}), auth.ErrPermissionDenied},
		{"other user", ann, sign(gojwt.MapClaims{"sub": "bob", "channel": "private:x", "exp": exp}), auth.ErrPermissionDenied},
		{"anonymous", &auth.Identity{}, sign(gojwt.MapClaims{"sub": "", "channel": "private:x", "exp": exp}), auth.ErrPermissionDenied},
		{"expired", ann, sign(gojwt.MapClaims{"sub": "ann", "channel": "private:x", "exp": exp - 7200}), auth.ErrTokenExpired},
	}
	for _, tt := range tests {
		err := a.AuthenticateChannel(context.Background(), tt.id, "private:x", tt.token)
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestNewRefusesNoKey(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with no key succeeded")
	}
	if _, err := ParsePublicKeyPEM([]byte("not pem")); err == nil {
		t.Fatal("ParsePublicKeyPEM took garbage")
	}
}

// FuzzAuthenticate: whatever the token, Authenticate returns an identity
// with a user or an error that is ErrUnauthorized or ErrTokenExpired, and
// the error never quotes the token.
func FuzzAuthenticate(f *testing.F) {
	secret := []byte("fuzz")
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := gojwt.MapClaims{"sub": "ann", "info": map[string]int{"a": 1}}
	valid, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, claims).SignedString(secret)
	es, _ := gojwt.NewWithClaims(gojwt.SigningMethodES256, claims).SignedString(ek)
	for _, s := range []string{valid, es, "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", valid[:len(valid)-2], es[:len(es)-3]} {
		f.Add(s)
	}
	a, _ := New(Config{HMACSecret: secret, PublicKeys: []crypto.PublicKey{&ek.PublicKey}}) // ES256 tokens go through the cache
	f.Fuzz(func(t *testing.T, token string) {
		id, err := a.Authenticate(context.Background(), auth.Credentials{Token: token})
		if err == nil {
			if id == nil || id.User == "" || (len(id.Info) > 0 && !json.Valid(id.Info)) {
				t.Fatalf("identity %+v", id)
			}
			return
		}
		if !errors.Is(err, auth.ErrUnauthorized) && !errors.Is(err, auth.ErrTokenExpired) {
			t.Fatalf("error %v", err)
		}
		if len(token) > 8 && strings.Contains(err.Error(), token) {
			t.Fatalf("the error quotes the token: %v", err)
		}
	})
}
