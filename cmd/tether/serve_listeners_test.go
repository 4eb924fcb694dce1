package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once; it
// signals each write.
type lockedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestServeRefusesOpenAddressesWithoutKey(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"http", []string{"--http-addr", "0.0.0.0:0", "--tcp-addr", "", "--grpc-addr", ""}},
		{"tcp", []string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "0.0.0.0:0", "--grpc-addr", ""}},
		{"grpc", []string{"--http-addr", "127.0.0.1:0", "--tcp-addr", "", "--grpc-addr", "0.0.0.0:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(t.Context(), append([]string{"serve"}, tt.args...), &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "refusing to serve on \"0.0.0.0:0\"") {
				t.Fatalf("stderr:\n%s", stderr.String())
			}
		})
	}
}

func TestServeListensOnEveryTransport(t *testing.T) {
	t.Setenv("TETHER_TCP_ADDR", "127.0.0.1:0") // from the environment, as every flag
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stdout := &lockedBuffer{wrote: make(chan struct{}, 1)}
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-level", "error"}, stdout, &stderr)
	}()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(stdout.String(), "tether gRPC on 127.0.0.1:") {
		select {
		case <-stdout.wrote:
		case code := <-done:
			t.Fatalf("serve exited %d early; stderr:\n%s", code, stderr.String())
		case <-deadline:
			t.Fatalf("serve did not start; stdout:\n%s", stdout.String())
		}
	}
	if out := stdout.String(); !strings.Contains(out, "tether TCP (newline-delimited JSON) on 127.0.0.1:") {
		t.Fatalf("stdout:\n%s", out)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d after its context ended; stderr:\n%s", code, stderr.String())
	}
}
