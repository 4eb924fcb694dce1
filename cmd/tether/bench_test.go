package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

func TestRunBench(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	addr := n.Addr().String()
	tests := []struct {
		name string
		args []string
		code int
		json bool // stdout is one JSON line
	}{
		{"no command", []string{"bench"}, 2, false},
		{"unknown command", []string{"bench", "nope"}, 2, false},
		{"unknown target", []string{"bench", "conns", "-target", "x"}, 2, false},
		{"conns", []string{"bench", "conns", "-n", "5", "-settle", "10ms", "-addr", addr, "-json"}, 0, true},
		{"fanout", []string{"bench", "fanout", "-n", "5", "-m", "5", "-rate", "0", "-addr", addr, "-json"}, 0, true},
		{"nothing listening", []string{"bench", "conns", "-n", "5", "-addr", "127.0.0.1:1", "-json"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if code := run(ctx, tt.args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if tt.json {
				var v map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v["limit"] != nil {
					t.Fatalf("stdout %q: want one JSON result with no limit hit (%v)", stdout.String(), err)
				}
			}
		})
	}
}
