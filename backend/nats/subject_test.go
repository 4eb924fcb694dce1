package nats

import (
	"strconv"
	"strings"
	"testing"
)

// untoken reverses token, for the tests.
func untoken(tok string) (string, bool) {
	if tok == "%" {
		return "", true
	}
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c != '%' {
			if !keep(c) {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(tok) {
			return "", false
		}
		v, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(tok[i+1:i+3]) != tok[i+1:i+3] {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// checkToken checks tok is one literal NATS subject token that gives back
// channel.
func checkToken(t *testing.T, channel string) {
	t.Helper()
	tok := token(channel)
	if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, ". \t\r\n*>") {
		t.Fatalf("token(%q) = %q: not one literal subject token", channel, tok)
	}
	for _, r := range tok {
		if r > 0x7e || r < 0x21 {
			t.Fatalf("token(%q) = %q: has %q", channel, tok, r)
		}
	}
	if back, ok := untoken(tok); !ok || back != channel {
		t.Fatalf("token(%q) = %q, which reads back as %q", channel, tok, back)
	}
}

var channelNames = []string{
	"chat:lobby", "a.b", ".", "..", "*", ">", "a.*.>", "a b", "%", "%41", "A", "a%2Eb",
	"чат:лобби", "频道", "🎉🚀", "ch\x00", strings.Repeat("é", 127) + "x", strings.Repeat("🎉", 63) + "abc",
}

func TestToken(t *testing.T) {
	seen := map[string]string{}
	for _, name := range channelNames {
		checkToken(t, name)
		tok := token(name)
		if other, dup := seen[tok]; dup {
			t.Fatalf("%q and %q share the token %q", name, other, tok)
		}
		seen[tok] = name
	}
	if got := token("chat:lobby-1_A"); got != "chat:lobby-1_A" {
		t.Errorf("a plain name is escaped: %q", got)
	}
	if got := token("a.b"); got != "a%2Eb" {
		t.Errorf("token(a.b) = %q, want a%%2Eb", got)
	}
}

func FuzzToken(f *testing.F) {
	for _, name := range channelNames {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, channel string) {
		checkToken(t, channel)
	})
}

// checkKVToken checks kvToken(s) is a valid key-value key token that gives
// back s.
func checkKVToken(t *testing.T, s string) {
	t.Helper()
	tok := kvToken(s)
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !keep(c) && c != '=' && c != '/' || c == ':' {
			t.Fatalf("kvToken(%q) = %q: has %q, not allowed in a key token", s, tok, c)
		}
	}
	if back, ok := untoken(strings.NewReplacer("=", "%", "/", ":").Replace(tok)); !ok || back != s {
		t.Fatalf("kvToken(%q) = %q, which reads back as %q", s, tok, back)
	}
}

func FuzzKVToken(f *testing.F) {
	for _, name := range append(channelNames, "a/b", "a=b", "=3A", "/") {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkKVToken(t, s)
	})
}
