package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/tethertest"
)

// outBuffer is a bytes.Buffer safe for concurrent use that can wait for text.
type outBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{}
}

func newOutBuffer() *outBuffer { return &outBuffer{more: make(chan struct{}, 1)} }

func (b *outBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.more <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *outBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output contains every one of want, for at most 10s.
func (b *outBuffer) waitFor(t *testing.T, want ...string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s := b.String()
		missing := ""
		for _, w := range want {
			if !strings.Contains(s, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-b.more:
		case <-timeout:
			t.Fatalf("output %q lacks %q", s, missing)
		}
	}
}

func TestClientCommand(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	base := "ws://" + n.Addr().String()
	tests := []struct {
		name  string
		args  []string
		input []string
		want  []string // on stdout
		stop  bool     // cancel rather than wait for stdin's end
	}{
		{
			name:  "sub and pub",
			args:  []string{"--sub", "room", "--sub", "other", "--pub", "room", base + "/ws"},
			input: []string{`{"text":"hi"}`, "plain words"},
			want:  []string{`room 1 {"text":"hi"}` + "\n", `room 2 "plain words"` + "\n"},
			stop:  true,
		},
		{
			name:  "raw echo",
			args:  []string{"--raw", base + "/ws/echo"},
			input: []string{"hello", "again"},
			want:  []string{"hello\n", "again\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdin, feed := io.Pipe()
			stdout, stderr := newOutBuffer(), newOutBuffer()
			code := make(chan int, 1)
			go func() { code <- clientCmd(ctx, tt.args, stdin, stdout, stderr) }()
			stderr.waitFor(t, "connected to")
			if tt.stop { // --sub: wait for the subscriptions
				stderr.waitFor(t, "subscribed to room", "subscribed to other")
			}
			for _, line := range tt.input {
				if _, err := io.WriteString(feed, line+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			stdout.waitFor(t, tt.want...)
			if tt.stop {
				cancel()
			} else {
				_ = feed.Close()
			}
			select {
			case c := <-code:
				if c != 0 {
					t.Fatalf("exit code %d; stderr:\n%s", c, stderr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("tether client did not stop")
			}
			_ = feed.Close()
		})
	}
}

func TestClientCommandUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no url", nil, 2},
		{"raw with sub", []string{"--raw", "--sub", "x", "ws://127.0.0.1:1/"}, 2},
		{"help", []string{"-h"}, 0},
		{"unreachable", []string{"ws://127.0.0.1:1/ws"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if c := clientCmd(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr); c != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", c, tt.code, stderr.String())
			}
		})
	}
}

// TestClientCommandReconnects restarts the server under `tether client`: it
// must say on stderr that it lost the connection, came back and could not
// recover (new epoch), and go on printing.
func TestClientCommandReconnects(t *testing.T) {
	n1 := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	addr := n1.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newOutBuffer(), newOutBuffer()
	code := make(chan int, 1)
	go func() {
		code <- clientCmd(ctx, []string{"--sub", "room", "ws://" + addr + "/ws"}, strings.NewReader(""), stdout, stderr)
	}()
	stderr.waitFor(t, "subscribed to room")
	if _, err := n1.Publish(ctx, "room", json.RawMessage(`"before"`)); err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "room 1 \"before\"\n")

	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := n1.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	n2 := tethertest.NewNodeRetry(t, tether.Config{HTTPAddr: addr}, 5*time.Second)
	stderr.waitFor(t, "disconnected: ", "room: GAP: could not recover")
	if _, err := n2.Publish(ctx, "room", json.RawMessage(`"after"`)); err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "room 1 \"after\"\n")
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", c, stderr)
	}
}

// TestClientCommandPresence: tether client prints the joins and leaves of
// its subscriptions' channels.
func TestClientCommandPresence(t *testing.T) {
	z, err := namespaces.New(namespaces.Open, []namespaces.Namespace{{Name: "room", JoinLeave: auth.JoinLeaveClients, Occupancy: true}})
	if err != nil {
		t.Fatal(err)
	}
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback, Authorizer: z, Presence: tether.PresenceConfig{Window: 20 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdin, feed := io.Pipe()
	defer feed.Close()
	stdout, stderr := newOutBuffer(), newOutBuffer()
	code := make(chan int, 1)
	go func() {
		code <- clientCmd(ctx, []string{"--sub", "room:1", "ws://" + n.Addr().String() + "/ws"}, stdin, stdout, stderr)
	}()
	stderr.waitFor(t, "subscribed to room:1", "room:1: joined: c", "room:1: 1 clients, 0 users")
	other := newOutBuffer()
	otherCtx, stopOther := context.WithCancel(ctx)
	otherIn, otherFeed := io.Pipe()
	defer otherFeed.Close()
	otherCode := make(chan int, 1)
	go func() {
		otherCode <- clientCmd(otherCtx, []string{"--sub", "room:1", "ws://" + n.Addr().String() + "/ws"}, otherIn, newOutBuffer(), other)
	}()
	other.waitFor(t, "subscribed to room:1")
	stderr.waitFor(t, "room:1: 2 clients, 0 users")
	stopOther()
	<-otherCode
	stderr.waitFor(t, "room:1: left: c", "room:1: 1 clients, 0 users")
	cancel()
	<-code
}
