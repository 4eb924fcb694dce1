package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherhq/tether/auth"
)

// The reasons a token is refused. They name what is wrong, never the token.
var (
	errMalformed    = errors.New("token is malformed")
	errAlgorithm    = errors.New("signing method is not allowed")
	errSignature    = errors.New("signature is invalid")
	errNotValidYet  = errors.New("token is not valid yet")
	errIssuedLater  = errors.New("token used before issued")
	errAudience     = errors.New("token has invalid audience")
	errIssuer       = errors.New("token has invalid issuer")
	errClaimsFormat = errors.New("token has invalid claims")
)

// claims are the claims tether reads from a token: the registered ones it
// checks and tether's own (info, channels, channel).
type claims struct {
	Subject   string          `json:"sub"`
	Issuer    string          `json:"iss"`
	Audience  audience        `json:"aud"`
	ExpiresAt numericDate     `json:"exp"`
	NotBefore numericDate     `json:"nbf"`
	IssuedAt  numericDate     `json:"iat"`
	Info      json.RawMessage `json:"info"`
	Channels  []string        `json:"channels"`
	Channel   string          `json:"channel"`
}

// numericDate is a JWT NumericDate: seconds since the epoch, a JSON number
// (fractions are truncated to the second). Set says the claim was there.
type numericDate struct {
	time.Time
	Set bool
}

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return errClaimsFormat
	}
	sec, _ := math.Modf(f)
	d.Time, d.Set = time.Unix(int64(sec), 0), true
	return nil
}

// audience is the aud claim: one string or a list of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

// header is a token's JOSE header: the fields tether reads.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// headers remembers decoded headers by their encoding: the tokens of one
// issuer share a handful of them, and decoding one is half the JSON work of
// a token. Only the headers of tokens whose signature held are kept (a
// stranger cannot fill it), at most maxHeaders; past that each is decoded.
type headers struct {
	m sync.Map // string -> header
	n atomic.Int32
}

const maxHeaders = 64

// decode returns the header seg encodes, and whether it was known.
func (hs *headers) decode(seg string) (header, bool, error) {
	if h, ok := hs.m.Load(seg); ok {
		return h.(header), true, nil
	}
	var h header
	err := decodeJSON(seg, &h)
	return h, false, err
}

// keep remembers h as seg's header, while there is room.
func (hs *headers) keep(seg string, h header) {
	if len(seg) <= 256 && hs.n.Load() < maxHeaders && hs.n.Add(1) <= maxHeaders {
		hs.m.Store(strings.Clone(seg), h)
	}
}

// hmacs reuses HS256 hashers of one secret.
type hmacs struct{ pool sync.Pool }

func newHMACs(secret []byte) *hmacs {
	h := &hmacs{}
	h.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return h
}

// verify reports whether sig is the HS256 MAC of input.
func (h *hmacs) verify(input string, sig []byte) bool {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(input))
	var buf [sha256.Size]byte
	ok := hmac.Equal(m.Sum(buf[:0]), sig)
	h.pool.Put(m)
	return ok
}

// maxTokenSize bounds what is decoded: a token longer than this is refused
// before any work (a connection token is a few hundred bytes).
const maxTokenSize = 16 << 10

// verify checks token's signature with the keys its configured algorithm
// allows and its time, audience and issuer claims, and returns its claims.
// The algorithm comes from the configuration: a token's alg is only matched
// against it, so "none" and an HS256 token against public keys are refused.
// Errors wrap auth.ErrTokenExpired or auth.ErrUnauthorized.
func (a *Authenticator) verify(ctx context.Context, token string) (*claims, error) {
	if len(token) > maxTokenSize {
		return nil, unauthorized(errMalformed)
	}
	h1 := strings.IndexByte(token, '.')
	if h1 < 0 {
		return nil, unauthorized(errMalformed)
	}
	p2 := strings.IndexByte(token[h1+1:], '.')
	if p2 < 0 {
		return nil, unauthorized(errMalformed)
	}
	p2 += h1 + 1
	if strings.IndexByte(token[p2+1:], '.') >= 0 {
		return nil, unauthorized(errMalformed)
	}
	hd, known, err := a.headers.decode(token[:h1])
	if err != nil {
		return nil, unauthorized(errMalformed)
	}
	var sigBuf [512]byte // an RSA-4096 signature fits
	sig, err := decodeSegment(sigBuf[:0], token[p2+1:])
	if err != nil {
		return nil, unauthorized(errMalformed)
	}
	if !slices.Contains(a.methods, hd.Alg) {
		return nil, unauthorized(errAlgorithm)
	}
	input := token[:p2]
	if err := a.verifySignature(ctx, hd, input, sig); err != nil {
		return nil, err
	}
	if !known {
		a.headers.keep(token[:h1], hd)
	}
	var cl claims
	if err := decodeJSON(token[h1+1:p2], &cl); err != nil {
		return nil, unauthorized(errMalformed)
	}
	if err := a.validate(&cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// verifySignature checks sig over input with the keys of hd.Alg.
func (a *Authenticator) verifySignature(ctx context.Context, hd header, input string, sig []byte) error {
	switch hd.Alg {
	case "HS256":
		if a.hmac.verify(input, sig) {
			return nil
		}
		return unauthorized(errSignature)
	case "RS256", "ES256":
		keys, err := a.publicKeys(ctx, hd)
		if err != nil {
			return err
		}
		digest := sha256.Sum256([]byte(input))
		for _, k := range keys {
			if verifyPublic(k, digest[:], sig) {
				return nil
			}
		}
		return unauthorized(errSignature)
	}
	return unauthorized(errAlgorithm)
}

// publicKeys returns the keys that may verify a token of hd.Alg: the
// configured ones of its type, and the JWKS key named hd.Kid if it is of that
// type.
func (a *Authenticator) publicKeys(ctx context.Context, hd header) ([]crypto.PublicKey, error) {
	static, fits := a.rsa, isRSA
	if hd.Alg == "ES256" {
		static, fits = a.ec, isEC
	}
	if a.jwks == nil {
		return static, nil
	}
	k, err := a.jwks.key(ctx, hd.Kid)
	switch {
	case err == nil && fits(k):
		return append(slices.Clip(static), k), nil // never into static
	case err != nil && len(static) == 0:
		return nil, err
	}
	return static, nil
}

func isRSA(k crypto.PublicKey) bool { _, ok := k.(*rsa.PublicKey); return ok }
func isEC(k crypto.PublicKey) bool  { _, ok := k.(*ecdsa.PublicKey); return ok }

// verifyPublic reports whether sig is an RS256 or ES256 signature of digest by k.
func verifyPublic(k crypto.PublicKey, digest, sig []byte) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 64 { // r and s, 32 bytes each (P-256)
			return false
		}
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}

// validate checks cl's times against the clock, and its audience and issuer
// against the configuration.
func (a *Authenticator) validate(cl *claims) error {
	now := a.cfg.Now()
	if cl.ExpiresAt.Set && !now.Before(cl.ExpiresAt.Time) {
		return fmt.Errorf("%w: exp is past", auth.ErrTokenExpired)
	}
	if cl.NotBefore.Set && now.Before(cl.NotBefore.Time) {
		return unauthorized(errNotValidYet)
	}
	if cl.IssuedAt.Set && now.Before(cl.IssuedAt.Time) {
		return unauthorized(errIssuedLater)
	}
	if a.cfg.Audience != "" && !slices.Contains(cl.Audience, a.cfg.Audience) {
		return unauthorized(errAudience)
	}
	if a.cfg.Issuer != "" && cl.Issuer != a.cfg.Issuer {
		return unauthorized(errIssuer)
	}
	return nil
}

func unauthorized(reason error) error {
	return fmt.Errorf("%w: %w", auth.ErrUnauthorized, reason)
}

// decodeSegment appends the base64url (unpadded) decoding of seg to dst.
func decodeSegment(dst []byte, seg string) ([]byte, error) {
	n := base64.RawURLEncoding.DecodedLen(len(seg))
	if cap(dst)-len(dst) < n {
		dst = slices.Grow(dst, n)
	}
	m, err := base64.RawURLEncoding.Decode(dst[len(dst):len(dst)+n], []byte(seg))
	return dst[:len(dst)+m], err
}

// decodeJSON decodes the base64url segment seg as the JSON of v.
func decodeJSON(seg string, v any) error {
	var buf [512]byte
	b, err := decodeSegment(buf[:0], seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
