package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// benchTokens signs n connection tokens, one per bench client (users
// bench-0, bench-1, ...), valid for an hour: with the HS256 secret, or with
// the private key in keyFile (RSA: RS256, P-256: ES256). Signing happens
// before the run, so that the run measures the server's verification only.
func benchTokens(n int, secret, keyFile string) (func(int) string, error) {
	var method gojwt.SigningMethod
	var key any
	switch {
	case secret != "" && keyFile != "":
		return nil, errors.New("--token-hmac-secret and --token-key are exclusive")
	case secret != "":
		method, key = gojwt.SigningMethodHS256, []byte(secret)
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("%s: no PEM block", keyFile)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			if k, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
				if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
					return nil, fmt.Errorf("%s: %w", keyFile, err)
				}
			}
		}
		switch k.(type) {
		case *rsa.PrivateKey:
			method = gojwt.SigningMethodRS256
		case *ecdsa.PrivateKey:
			method = gojwt.SigningMethodES256
		default:
			return nil, fmt.Errorf("%s: unsupported key type %T", keyFile, k)
		}
		key = k
	default:
		return nil, nil
	}
	exp := time.Now().Add(time.Hour).Unix()
	toks := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				toks[i], errs[i] = gojwt.NewWithClaims(method, gojwt.MapClaims{"sub": "bench-" + strconv.Itoa(i), "exp": exp}).SignedString(key)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return func(i int) string { return toks[i] }, nil
}
