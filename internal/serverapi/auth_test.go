package serverapi

import (
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name        string
		key         string
		credentials []string
		remote      string
		want        error
	}{
		{"no key, loopback", "", nil, "127.0.0.1:5000", nil},
		{"no key, loopback v6", "", nil, "[::1]:5000", nil},
		{"no key, remote", "", nil, "192.0.2.7:5000", errLoopbackOnly},
		{"no key, remote with a credential", "", []string{"Bearer anything"}, "192.0.2.7:5000", errLoopbackOnly},
		{"no key, no address", "", nil, "", errLoopbackOnly},
		{"no key, not an address", "", nil, "bufconn", errLoopbackOnly},
		{"key", "s3cret", []string{"Bearer s3cret"}, "192.0.2.7:5000", nil},
		{"key, scheme in any case", "s3cret", []string{"bearer s3cret"}, "192.0.2.7:5000", nil},
		{"key among several", "s3cret", []string{"Basic eA==", "Bearer nope", "Bearer s3cret"}, "192.0.2.7:5000", nil},
		{"key missing", "s3cret", nil, "192.0.2.7:5000", errWrongKey},
		{"key missing, even from loopback", "s3cret", nil, "127.0.0.1:5000", errWrongKey},
		{"wrong key", "s3cret", []string{"Bearer nope"}, "127.0.0.1:5000", errWrongKey},
		{"key as a prefix", "s3cret", []string{"Bearer s3cre"}, "127.0.0.1:5000", errWrongKey},
		{"key with more", "s3cret", []string{"Bearer s3cretx"}, "127.0.0.1:5000", errWrongKey},
		{"no scheme", "s3cret", []string{"s3cret"}, "127.0.0.1:5000", errWrongKey},
		{"other scheme", "s3cret", []string{"Basic s3cret"}, "127.0.0.1:5000", errWrongKey},
		{"empty bearer", "s3cret", []string{"Bearer "}, "127.0.0.1:5000", errWrongKey},
		{"shorter than the scheme", "s3cret", []string{"Bx"}, "127.0.0.1:5000", errWrongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := New(Config{APIKey: tt.key, MaxBodySize: 1024})
			err := a.authorize(tt.credentials, tt.remote)
			if err != tt.want {
				t.Fatalf("authorize = %v, want %v", err, tt.want)
			}
			if err == nil {
				return
			}
			if k, _ := Classify(err); k != KindUnauthorized {
				t.Fatalf("kind %v, want unauthorized", k)
			}
			for _, c := range append(tt.credentials, tt.key) {
				if secret, _ := strings.CutPrefix(c, "Bearer "); secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("the refusal %q echoes a credential", err)
				}
			}
		})
	}
}
