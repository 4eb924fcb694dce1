package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
)

// tokenCmd prints an HS256 connection token, for development: the secret
// is the server's --token-hmac-secret.
func tokenCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tether token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "the server's --token-hmac-secret (required)")
	user := fs.String("user", "", "the user id: the token's sub (required)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid (0: no exp)")
	var channels listFlag
	fs.Var(&channels, "channels", "comma-separated channels the token grants")
	info := fs.String("info", "", "JSON about the user, shown to others as from.info")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *secret == "" || *user == "" {
		fmt.Fprintln(stderr, "tether token: --secret and --user are required")
		return 2
	}
	now := time.Now()
	claims := gojwt.MapClaims{"sub": *user, "iat": now.Unix()}
	if *ttl > 0 {
		claims["exp"] = now.Add(*ttl).Unix()
	}
	if len(channels) > 0 {
		claims["channels"] = []string(channels)
	}
	if *info != "" {
		if !json.Valid([]byte(*info)) {
			fmt.Fprintln(stderr, "tether token: --info is not JSON")
			return 2
		}
		claims["info"] = json.RawMessage(*info)
	}
	tok, err := gojwt.NewWithClaims(gojwt.SigningMethodHS256, claims).SignedString([]byte(*secret))
	if err != nil {
		fmt.Fprintln(stderr, "tether token:", err)
		return 1
	}
	fmt.Fprintln(stdout, tok)
	return 0
}
