package tether_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

// nodeJS returns the path of Node.js, skipping the test when there is none
// unless TETHER_REQUIRE_NODE is set (make test sets it, and installs the
// tests' npm packages).
func nodeJS(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("web", "js", "node_modules", "ws", "package.json"))
		if err != nil {
			err = errors.New("web/js has no node_modules/ws: run `npm ci` in web/js (make test does)")
		}
	}
	if err != nil {
		if os.Getenv("TETHER_REQUIRE_NODE") != "" {
			t.Fatalf("TETHER_REQUIRE_NODE is set, but: %v", err)
		}
		t.Skipf("no Node.js tests: %v", err)
	}
	return p
}

// TestJSClient runs tether.js's own tests (web/js/test, node:test) in Node,
// with the ws package as its WebSocket, against real tether servers:
//   - TETHER_WS, TETHER_HTTP: a node with the default history (100);
//   - TETHER_SHORT_WS, TETHER_SHORT_HTTP: a node that keeps 3 publications;
//   - TETHER_CONTROL: an HTTP endpoint on loopback for what the server API
//     cannot do: POST /abort resets every WebSocket of the first node without
//     a close frame; POST /restart restarts it on the same address (memory
//     history lost: a new epoch).
//
// The tests that need no server (a scripted fake one) run in the same go.
func TestJSClient(t *testing.T) {
	node := nodeJS(t)
	cfg := tethertest.Config()
	short := tethertest.Config()
	short.HistorySize = 3
	sn := tethertest.NewNode(t, short)

	var mu sync.Mutex
	cur := tethertest.NewNode(t, cfg) // replaced by /restart; the last one is shut down by the cleanup below
	addr := cur.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /abort", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%d\n", cur.AbortConnections(1<<20))
	})
	mux.HandleFunc("POST /restart", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cur.Shutdown(ctx)
		c := cfg
		c.HTTPAddr = addr
		n, err := newNodeRetry(c, 5*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cur = n
	})
	control := httptest.NewServer(mux) // loopback
	defer control.Close()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = cur.Shutdown(ctx)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join("web", "js")
	files, err := filepath.Glob(filepath.Join(dir, "test", "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no tests in %s/test: %v", dir, err)
	}
	args := []string{"--test", "--test-reporter=spec", "--test-concurrency=2"}
	for _, f := range files {
		args = append(args, strings.TrimPrefix(f, dir+string(filepath.Separator)))
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TETHER_WS=ws://"+addr+"/ws",
		"TETHER_HTTP=http://"+addr,
		"TETHER_SHORT_WS="+tethertest.WSURL(sn, "/ws"),
		"TETHER_SHORT_HTTP="+tethertest.HTTPURL(sn, ""),
		"TETHER_CONTROL="+control.URL,
		"NO_COLOR=1",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("node --test (%v):\n%s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(string(out)))
	}
	if err != nil {
		t.Fatalf("tether.js tests failed: %v", err)
	}
}

// newNodeRetry starts a node, retrying while its port is not free yet. It is
// tethertest.NewNodeRetry for a goroutine that is not the test's.
func newNodeRetry(cfg tether.Config, d time.Duration) (*tether.Node, error) {
	deadline := time.Now().Add(d)
	for {
		n, err := tethertest.Start(cfg)
		if err == nil || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(20 * time.Millisecond) // nothing to wait on but time
	}
}
