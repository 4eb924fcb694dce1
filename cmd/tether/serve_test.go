package main

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestServeRefusesOpenAddressWithoutKey(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{"all interfaces, no key", []string{"--http-addr", ":0"}, nil, 2, "refusing to serve"},
		{"public address from env", nil, map[string]string{"TETHER_HTTP_ADDR": "0.0.0.0:0"}, 2, "refusing to serve"},
		{"bad duration", []string{"--ping-interval", "soon"}, nil, 2, "invalid value"},
		{"bad env value", nil, map[string]string{"TETHER_MAX_CONNS": "many"}, 2, "TETHER_MAX_CONNS"},
		{"invalid config", []string{"--http-addr", "127.0.0.1:0", "--max-conns", "0"}, nil, 1, "max conns must be positive"},
		{"bad log format", []string{"--log-format", "xml"}, nil, 2, "--log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"serve"}, tt.args...), &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}

func TestServeStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-timeout", "5s"}, &out, &errb)
	}()
	cancel() // as SIGTERM would: the server starts, then shuts down cleanly
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d, stderr %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestEnvFillsUnsetFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	a := fs.String("api-key", "", "")
	b := fs.String("http-addr", "d", "")
	if err := fs.Parse([]string{"--http-addr", "flag"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TETHER_API_KEY": "k", "TETHER_HTTP_ADDR": "env"}
	if err := applyEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if *a != "k" || *b != "flag" {
		t.Fatalf("api-key %q http-addr %q: want env for the unset flag, the flag for the set one", *a, *b)
	}
}
