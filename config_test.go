package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

func TestNewFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		edit func(*tether.Config)
		want string
	}{
		{"tcp address taken", func(c *tether.Config) { c.TCPAddr = busy.Addr().String() }, "listen tcp"},
		{"grpc address taken", func(c *tether.Config) { c.GRPCAddr = busy.Addr().String() }, "listen grpc"},
		{"certificate without key", func(c *tether.Config) { c.TLSCertFile = "cert.pem" }, "TLS needs both"},
		{"missing certificate files", func(c *tether.Config) { c.TLSCertFile, c.TLSKeyFile = "/nonexistent/c", "/nonexistent/k" }, "load TLS certificate"},
		{"compression level 10", func(c *tether.Config) { c.CompressionLevel = 10 }, "compression level must be between 1 and 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tethertest.Config()
			tt.edit(&cfg)
			n, err := tether.New(cfg) // must return, not hang on the listeners it did open
			if err == nil {
				n.Shutdown(t.Context())
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want %q in it", err, tt.want)
			}
		})
	}
}

// TestZeroConfig: a zero Config opens no listener and runs with every limit at
// its default; DefaultConfig spells those defaults out, without listeners.
func TestZeroConfig(t *testing.T) {
	d := tether.DefaultConfig()
	if d.HTTPAddr != "" || d.TCPAddr != "" || d.GRPCAddr != "" {
		t.Fatalf("DefaultConfig listens: %q %q %q", d.HTTPAddr, d.TCPAddr, d.GRPCAddr)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	// Validate takes a config as it stands: a zero limit is not valid to it.
	var zero tether.Config
	if err := zero.Validate(); err == nil || !strings.Contains(err.Error(), "max conns must be positive") {
		t.Fatalf("Validate of a zero Config: %v", err)
	}
	n := tethertest.NewNode(t, zero)
	if n.Addr() != nil || n.TCPAddr() != nil || n.GRPCAddr() != nil {
		t.Fatalf("a zero Config listens: %v %v %v", n.Addr(), n.TCPAddr(), n.GRPCAddr())
	}
	ctx := context.Background()
	for i := range d.HistorySize + 5 {
		if _, err := n.Publish(ctx, "news", json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if h, err := n.History(ctx, "news", nil, 0); err != nil || len(h.Publications) != d.HistorySize {
		t.Fatalf("history of a zero Config's node: %d publications, %v; want the default %d", len(h.Publications), err, d.HistorySize)
	}
	long := strings.Repeat("x", d.MaxChannelLength+1)
	if _, err := n.Publish(ctx, long, json.RawMessage(`1`)); !errors.Is(err, tether.ErrInvalidChannel) {
		t.Fatalf("a channel over the default length: %v", err)
	}
}

// TestNegativeMeansNone: HistorySize -1 keeps no history; CommandRate -1 (with
// a burst of 1, were it used) limits nothing.
func TestNegativeMeansNone(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback, HistorySize: -1, HistoryTTL: -1, CommandRate: -1, CommandBurst: 1})
	ctx := context.Background()
	pos, err := n.Publish(ctx, "news", json.RawMessage(`1`))
	if err != nil || pos.Offset != 1 {
		t.Fatalf("publish: %+v, %v", pos, err)
	}
	if h, err := n.History(ctx, "news", nil, 0); err != nil || len(h.Publications) != 0 {
		t.Fatalf("history with HistorySize -1: %+v, %v; want none", h, err)
	}
	c := dial(t, n)
	for i := range 20 {
		if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("ping %d with CommandRate -1: %v", i, m.Error)
		}
	}
}
