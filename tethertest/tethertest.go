// Package tethertest starts tether nodes on loopback for tests, in the spirit
// of net/http/httptest:
//
//	n := tethertest.NewNode(t, tethertest.Config()) // HTTP, TCP and gRPC on 127.0.0.1, random ports
//	c, err := client.Dial(ctx, tethertest.WSURL(n, "/ws"))
//
// The node shuts down when the test ends. NewNode refuses a config that would
// listen beyond loopback. The package is for tests only: it must not be
// imported by a server.
package tethertest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// Loopback is a listen address on a random free loopback port.
const Loopback = "127.0.0.1:0"

// shutdownTimeout is how long Close waits for a node's clients to leave.
const shutdownTimeout = 5 * time.Second

// Config returns tether's defaults with every listener (HTTP, TCP and gRPC) on
// a random loopback port. Clear an address to go without that listener.
func Config() tether.Config {
	cfg := tether.DefaultConfig()
	cfg.HTTPAddr, cfg.TCPAddr, cfg.GRPCAddr = Loopback, Loopback, Loopback
	return cfg
}

// NewNode starts a node with cfg and shuts it down when t ends; it fails t if
// the node does not start. A zero cfg has no listeners: use Config, or set
// HTTPAddr to Loopback.
func NewNode(t testing.TB, cfg tether.Config) *tether.Node {
	t.Helper()
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("tethertest: %v", err)
	}
	t.Cleanup(func() { Close(n) })
	return n
}

// NewNodeRetry is NewNode for a node that takes over the fixed address of one
// that just stopped: it retries New while the address is still taken, for at
// most d.
func NewNodeRetry(t testing.TB, cfg tether.Config, d time.Duration) *tether.Node {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n, err := Start(cfg)
		if err == nil {
			t.Cleanup(func() { Close(n) })
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("tethertest: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the port is not free yet: nothing to wait on but time
	}
}

// Start starts a node with cfg, for code that has no testing.TB, such as an
// Example; stop it with Close. It refuses a config that listens beyond
// loopback.
func Start(cfg tether.Config) (*tether.Node, error) {
	for _, addr := range []string{cfg.HTTPAddr, cfg.TCPAddr, cfg.GRPCAddr} {
		if addr != "" && !loopback(addr) {
			return nil, fmt.Errorf("refusing to listen on %q: test nodes listen on loopback only", addr)
		}
	}
	return tether.New(cfg)
}

// Close shuts n down, giving its clients up to 5s to leave.
func Close(n *tether.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = n.Shutdown(ctx)
}

// HTTPURL returns the http:// URL of path on n's HTTP listener; n must have one.
func HTTPURL(n *tether.Node, path string) string { return "http://" + n.Addr().String() + path }

// WSURL returns the ws:// URL of path, such as "/ws", on n's HTTP listener; n
// must have one.
func WSURL(n *tether.Node, path string) string { return "ws://" + n.Addr().String() + path }

// loopback reports whether addr's host is a loopback IP address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
