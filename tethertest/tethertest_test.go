package tethertest_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

func TestNewNode(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	for name, a := range map[string]interface{ String() string }{"http": n.Addr(), "tcp": n.TCPAddr(), "grpc": n.GRPCAddr()} {
		if !strings.HasPrefix(a.String(), "127.0.0.1:") {
			t.Errorf("%s listens on %v, want loopback", name, a)
		}
	}
	resp, err := http.Get(tethertest.HTTPURL(n, "/healthz"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %d", resp.StatusCode)
	}
	if got, want := tethertest.WSURL(n, "/ws"), "ws://"+n.Addr().String()+"/ws"; got != want {
		t.Fatalf("WSURL = %q, want %q", got, want)
	}
}

func TestStartRefusesOpenAddresses(t *testing.T) {
	for _, cfg := range []tether.Config{
		{HTTPAddr: ":0"},
		{TCPAddr: "0.0.0.0:0"},
		{GRPCAddr: "[::]:0"},
		{HTTPAddr: "localhost:0"}, // a name may resolve beyond loopback
	} {
		n, err := tethertest.Start(cfg)
		if err == nil {
			tethertest.Close(n)
			t.Fatalf("Start(%+v) listened", cfg)
		}
		if !strings.Contains(err.Error(), "loopback only") {
			t.Fatalf("Start(%+v): %v", cfg, err)
		}
	}
}

func TestClose(t *testing.T) {
	n, err := tethertest.Start(tether.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tethertest.Close(n)
	tethertest.Close(n) // twice is fine
	if _, err := n.Publish(t.Context(), "x", []byte(`1`)); !errors.Is(err, tether.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}
