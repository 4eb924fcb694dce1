package tether_test

import (
	"net"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
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
		{"compression level 0", func(c *tether.Config) { c.CompressionLevel = 0 }, "compression level must be between 1 and 9"},
		{"compression level 10", func(c *tether.Config) { c.CompressionLevel = 10 }, "compression level must be between 1 and 9"},
		{"negative compression minimum", func(c *tether.Config) { c.CompressionMinSize = -1 }, "compression minimum size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
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
