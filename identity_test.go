package tether_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// testKeys are the keys the identity tests sign with. Generating RSA keys is
// slow, so they are made once.
var testKeys = struct {
	rsa    *rsa.PrivateKey
	rsaPEM []byte
	ec1    *ecdsa.PrivateKey
	ec2    *ecdsa.PrivateKey
}{}

func init() {
	var err error
	if testKeys.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&testKeys.rsa.PublicKey)
	testKeys.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	testKeys.ec1, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	testKeys.ec2, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

const testSecret = "s3cret-for-tests-only"

// sign returns a token with claims, signed with m and key; kid, when set,
// goes in the header.
func sign(t testing.TB, m gojwt.SigningMethod, key any, kid string, claims gojwt.MapClaims) string {
	t.Helper()
	tok := gojwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userClaims are valid claims for user, expiring in an hour.
func userClaims(user string) gojwt.MapClaims {
	return gojwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Hour).Unix(), "info": map[string]string{"name": user}}
}

func with(c gojwt.MapClaims, kv ...any) gojwt.MapClaims {
	out := gojwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// jwksServer serves a key set of one EC key, whose kid and key rotate on
// demand.
type jwksServer struct {
	*httptest.Server
	set     atomic.Value // []byte
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		_, _ = w.Write(s.set.Load().([]byte))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(kid string, k *ecdsa.PublicKey) {
	b64 := func(i *big.Int) string {
		b := make([]byte, 32)
		return base64.RawURLEncoding.EncodeToString(i.FillBytes(b))
	}
	set, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{
		"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": b64(k.X), "y": b64(k.Y),
	}}})
	s.set.Store(set)
}

// authNodes starts two nodes: one taking HS256 tokens, one taking RS256
// tokens from a PEM key and ES256 tokens from a JWKS, with aud and iss.
func authNodes(t *testing.T) (hs, rs *env, keys *jwksServer) {
	t.Helper()
	hsAuth, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator = hsAuth
	hs = startEnv(t, cfg, false)

	keys = newJWKSServer(t)
	keys.serve("k1", &testKeys.ec1.PublicKey)
	pub, err := jwt.ParsePublicKeyPEM(testKeys.rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	rsAuth, err := jwt.New(jwt.Config{
		PublicKeys: []crypto.PublicKey{pub}, JWKSURL: keys.URL, JWKSRefetchInterval: time.Nanosecond,
		Audience: "tether-tests", Issuer: "https://issuer.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg = tethertest.Config()
	cfg.Authenticator = rsAuth
	rs = startEnv(t, cfg, false)
	return hs, rs, keys
}

// TestConnectTokens: every kind of token, on every transport: the reply, and
// for a refused token the disconnect that follows.
func TestConnectTokens(t *testing.T) {
	hs, rs, keys := authNodes(t)
	aud := func(c gojwt.MapClaims) gojwt.MapClaims {
		return with(c, "aud", "tether-tests", "iss", "https://issuer.test")
	}
	now := time.Now()
	tests := []struct {
		name   string
		node   *env
		rotate bool // serve a new key under a new kid first
		token  func() string
		code   string // the error, or "" for a connect as "ann"
		close  int    // the disconnect's code after an error
	}{
		{"hs256 valid", hs, false, func() string { return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("ann")) }, "", 0},
		{"expired", hs, false, func() string {
			return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", with(userClaims("ann"), "exp", now.Add(-time.Minute).Unix()))
		}, protocol.ErrTokenExpired, protocol.CloseTokenExpired},
		{"not yet valid", hs, false, func() string {
			return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", with(userClaims("ann"), "nbf", now.Add(time.Hour).Unix()))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"wrong signature", hs, false, func() string {
			return sign(t, gojwt.SigningMethodHS256, []byte("another secret"), "", userClaims("ann"))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"alg none", hs, false, func() string {
			return sign(t, gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, "", userClaims("ann"))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"missing sub", hs, false, func() string {
			return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", with(userClaims("ann"), "sub", nil))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"no token", hs, false, func() string { return "" }, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"garbage", hs, false, func() string { return "a.b.c" }, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"rs256 valid", rs, false, func() string { return sign(t, gojwt.SigningMethodRS256, testKeys.rsa, "", aud(userClaims("ann"))) }, "", 0},
		{"hs token against an rs key", rs, false, func() string {
			return sign(t, gojwt.SigningMethodHS256, testKeys.rsaPEM, "", aud(userClaims("ann")))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"wrong aud", rs, false, func() string {
			return sign(t, gojwt.SigningMethodRS256, testKeys.rsa, "", with(aud(userClaims("ann")), "aud", "elsewhere"))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"wrong iss", rs, false, func() string {
			return sign(t, gojwt.SigningMethodRS256, testKeys.rsa, "", with(aud(userClaims("ann")), "iss", "https://evil.test"))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
		{"es256 from jwks", rs, false, func() string { return sign(t, gojwt.SigningMethodES256, testKeys.ec1, "k1", aud(userClaims("ann"))) }, "", 0},
		{"es256, key rotated to a new kid", rs, true, func() string {
			return sign(t, gojwt.SigningMethodES256, testKeys.ec2, "k2", aud(userClaims("ann")))
		}, "", 0},
		{"es256, old kid after the rotation", rs, false, func() string {
			return sign(t, gojwt.SigningMethodES256, testKeys.ec1, "k1", aud(userClaims("ann")))
		}, protocol.ErrUnauthorized, protocol.CloseUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rotate {
				keys.serve("k2", &testKeys.ec2.PublicKey)
			}
			tok := tt.token()
			for _, c := range tt.node.dialAll() {
				m := c.call(protocol.Command{Op: protocol.OpConnect, Token: tok})
				if tt.code == "" {
					var res protocol.ConnectResult
					if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.User != "ann" || res.Expires == 0 || res.TTL <= 0 {
						t.Fatalf("%s: connect: %+v %s, want user ann with an expiry", c.name, m.Error, m.Result)
					}
					continue
				}
				if m.Error == nil || m.Error.Code != tt.code {
					t.Fatalf("%s: connect: %+v %s, want %s", c.name, m.Error, m.Result, tt.code)
				}
				d := c.read()
				if d.Op != protocol.PushDisconnect || d.Code != tt.close {
					t.Fatalf("%s: after the refusal got %+v, want disconnect %d", c.name, d, tt.close)
				}
			}
		})
	}
}

// TestCommandsBeforeConnect: with auth configured, commands before connect
// are refused, ping is answered, and a silent connection is closed at the
// connect timeout with 4005.
func TestCommandsBeforeConnect(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	cfg := tethertest.Config()
	cfg.Authenticator = a
	cfg.ConnectTimeout = time.Second // room for a subscribe and a ping on a loaded machine
	e := startEnv(t, cfg, false)
	for _, dial := range []func() *pconn{e.dialWS, e.dialTCP, e.dialGRPC} {
		c := dial() // one at a time: each has its own timeout
		if m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "a"}); m.Error == nil || m.Error.Code != protocol.ErrUnauthorized {
			t.Fatalf("%s: subscribe before connect: %+v", c.name, m)
		}
		if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("%s: ping before connect: %+v", c.name, m)
		}
		start := time.Now()
		d := c.read()
		if d.Op != protocol.PushDisconnect || d.Code != protocol.CloseConnectTimeout || !d.Reconnect {
			t.Fatalf("%s: got %+v, want disconnect %d", c.name, d, protocol.CloseConnectTimeout)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%s: closed after %v", c.name, time.Since(start))
		}
	}
}

// TestUpgradeToken: a WebSocket upgrade request authenticates with a bearer
// header, the configured cookie, or ?token= only when allowed; the
// connection is then authenticated without a token in connect.
func TestUpgradeToken(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	cfg := tethertest.Config()
	cfg.Authenticator = a
	cfg.TokenCookie = "tether_token"
	e := startEnv(t, cfg, false)
	cfgQ := cfg
	cfgQ.TokenQuery = true
	eq := startEnv(t, cfgQ, false)
	good := sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("ann"))
	bad := sign(t, gojwt.SigningMethodHS256, []byte("nope"), "", userClaims("ann"))
	tests := []struct {
		name   string
		e      *env
		query  string
		header http.Header
		code   string // of the subscribe, "" for success
	}{
		{"bearer", e, "", http.Header{"Authorization": {"Bearer " + good}}, ""},
		{"cookie", e, "", http.Header{"Cookie": {"tether_token=" + good}}, ""},
		{"other cookie", e, "", http.Header{"Cookie": {"session=" + good}}, protocol.ErrUnauthorized},
		{"query not allowed", e, "?token=" + good, nil, protocol.ErrUnauthorized},
		{"query allowed", eq, "?token=" + good, nil, ""},
		{"bad bearer", e, "", http.Header{"Authorization": {"Bearer " + bad}}, protocol.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.e.dialWSWith(tt.query, tt.header)
			m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "news"})
			if tt.code == "" {
				if m.Error != nil {
					t.Fatalf("subscribe: %+v", m.Error)
				}
				m = c.call(protocol.Command{Op: protocol.OpConnect})
				var res protocol.ConnectResult
				if m.Error != nil || json.Unmarshal(m.Result, &res) != nil || res.User != "ann" {
					t.Fatalf("connect: %+v %s", m.Error, m.Result)
				}
				return
			}
			if m.Error == nil || m.Error.Code != tt.code {
				t.Fatalf("subscribe: %+v, want %s", m, tt.code)
			}
		})
	}
}

// TestGRPCMetadataToken: a gRPC stream authenticates with authorization
// metadata, as a WebSocket does with its upgrade request's header.
func TestGRPCMetadataToken(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	cfg := tethertest.Config()
	cfg.Authenticator = a
	e := startEnv(t, cfg, false)
	for _, tc := range []struct {
		token, code string
	}{
		{sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("ann")), ""},
		{sign(t, gojwt.SigningMethodHS256, []byte("nope"), "", userClaims("ann")), protocol.ErrUnauthorized},
	} {
		md := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tc.token)
		c := &pconn{t: t, name: "grpc", w: newGRPCWireContext(t, e.grpcConn(), md)}
		checkReply(t, c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: "news"}), tc.code)
	}
}
