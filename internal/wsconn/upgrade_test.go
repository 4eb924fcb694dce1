package wsconn

import (
	"net/http"
	"testing"
)

// TestAcceptKey: the example of RFC 6455, section 1.3.
func TestAcceptKey(t *testing.T) {
	got := string(appendSwitchingProtocols(nil, "dGhlIHNhbXBsZSBub25jZQ==", ""))
	want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHeaderHasToken(t *testing.T) {
	h := http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"h2c", "WebSocket"}}
	for _, tt := range []struct {
		name, token string
		want        bool
	}{
		{"Connection", "upgrade", true},
		{"Connection", "close", false},
		{"Upgrade", "websocket", true},
		{"Upgrade", "web", false},
	} {
		if got := headerHasToken(h, tt.name, tt.token); got != tt.want {
			t.Errorf("%s has %q: %v, want %v", tt.name, tt.token, got, tt.want)
		}
	}
}

func TestNegotiateDeflate(t *testing.T) {
	const base = deflateResponse
	tests := []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"other extension", []string{"x-webkit-deflate-frame"}, ""},
		{"bare", []string{"permessage-deflate"}, base},
		{"browser offer", []string{"permessage-deflate; client_max_window_bits"}, base},
		{"client window 8", []string{"permessage-deflate; client_max_window_bits=8"}, base},
		{"no context takeover both", []string{"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, base},
		{"server window 15", []string{`permessage-deflate; server_max_window_bits="15"`}, base + "; server_max_window_bits=15"},
		{"server window 10 declined, next offer taken", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, base},
		{"server window 10 only", []string{"permessage-deflate; server_max_window_bits=10"}, ""},
		{"unknown parameter", []string{"permessage-deflate; foo"}, ""},
		{"duplicate parameter", []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}, ""},
		{"client window out of range", []string{"permessage-deflate; client_max_window_bits=16"}, ""},
		{"value on a flag", []string{"permessage-deflate; server_no_context_takeover=1"}, ""},
		{"in a second header line", []string{"foo", "permessage-deflate"}, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := negotiateDeflate(tt.values); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
