package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/auth/namespaces"
)

// TestTokenCommand: `tether token` prints a token the server's
// authenticator takes, with the user, channels and info asked for.
func TestTokenCommand(t *testing.T) {
	secret := strings.Repeat("k", 32)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"token", "--secret", secret, "--user", "ann", "--ttl", "10m", "--channels", "a,b", "--info", `{"name":"Ann"}`}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(secret)})
	id, err := a.Authenticate(context.Background(), auth.Credentials{Token: strings.TrimSpace(out.String())})
	if err != nil {
		t.Fatal(err)
	}
	if id.User != "ann" || !id.Granted("b") || string(id.Info) != `{"name":"Ann"}` || time.Until(id.ExpiresAt) > 10*time.Minute || time.Until(id.ExpiresAt) < 9*time.Minute {
		t.Fatalf("identity %+v", id)
	}
	if code := run(context.Background(), []string{"token", "--user", "ann"}, &out, &errb); code != 2 {
		t.Fatalf("no secret: exit %d", code)
	}
}

func TestServeAuthFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "http_addr: 127.0.0.1:0\nnamespaces:\n  - name: chat\n    subscribe: users\n    pubish: users\n")
	unknown := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknown, "http_addr: 127.0.0.1:0\n\nmax_conn: 5\n")
	rule := filepath.Join(dir, "rule.yaml")
	writeFile(t, rule, "namespaces:\n  - name: chat\n    subscribe: everyone\n")
	hist := filepath.Join(dir, "hist.yaml")
	writeFile(t, hist, "namespaces:\n  - name: chat\n    history_size: 10\n")
	negative := filepath.Join(dir, "negative.yaml")
	writeFile(t, negative, "namespaces:\n  - name: chat\n    history_ttl: -1s\n")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"short secret", []string{"--token-hmac-secret", "short"}, 2, "at least 32 bytes"},
		{"audience without a key", []string{"--token-audience", "x"}, 2, "need a token key"},
		{"missing key file", []string{"--token-public-key", filepath.Join(dir, "none.pem")}, 2, "--token-public-key"},
		{"unknown namespace key", []string{"--config", bad}, 2, `line 5: field pubish not found`},
		{"unknown top-level key", []string{"--config", unknown}, 2, `line 3: unknown key "max_conn"`},
		{"bad rule", []string{"--config", rule}, 2, "must be all, users, granted or none"},
		{"namespace history on NATS", []string{"--config", hist, "--nats", "nats://127.0.0.1:1"}, 2, `namespace "chat" sets history_size or history_ttl: with NATS`},
		{"negative history_ttl", []string{"--config", negative}, 2, "history_ttl must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"serve"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

// TestNamespaceHistoryKeys: a namespace's history_size, history_ttl and
// recover are read from the file, and left nil when absent.
func TestNamespaceHistoryKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tether.yaml")
	writeFile(t, path, "namespaces:\n  - name: chat\n    history_size: 50\n    history_ttl: 90s\n    recover: false\n  - name: news\n")
	fc, err := applyConfigFile(flag.NewFlagSet("x", flag.ContinueOnError), path)
	if err != nil {
		t.Fatal(err)
	}
	chat, news := fc.Namespaces[0], fc.Namespaces[1]
	if chat.HistorySize == nil || *chat.HistorySize != 50 || chat.HistoryTTL == nil || *chat.HistoryTTL != 90*time.Second || chat.Recover == nil || *chat.Recover {
		t.Fatalf("chat %+v", chat)
	}
	if news.SetsHistory() || news.Recover != nil {
		t.Fatalf("news %+v", news)
	}
}

// TestConfigFilePrecedence: the file fills flags the command line and the
// environment left unset, and carries the namespaces.
func TestConfigFilePrecedence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tether.yaml")
	writeFile(t, path, "http_addr: file\napi_key: file\nallowed_origins: [https://a.test, https://b.test]\nnamespaces:\n  - name: chat\n    publish: users\n")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	httpAddr := fs.String("http-addr", "d", "")
	apiKey := fs.String("api-key", "", "")
	tcp := fs.String("tcp-addr", "d", "")
	var origins listFlag
	fs.Var(&origins, "allowed-origins", "")
	if err := fs.Parse([]string{"--http-addr", "flag"}); err != nil {
		t.Fatal(err)
	}
	fc, err := applyConfigFile(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	if *httpAddr != "flag" || *apiKey != "file" || *tcp != "d" || len(origins) != 2 {
		t.Fatalf("http %q api %q tcp %q origins %v", *httpAddr, *apiKey, *tcp, origins)
	}
	if len(fc.Namespaces) != 1 || fc.Namespaces[0] != (namespaces.Namespace{Name: "chat", Publish: namespaces.Users}) {
		t.Fatalf("namespaces %+v", fc.Namespaces)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
