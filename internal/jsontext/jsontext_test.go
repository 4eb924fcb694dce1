package jsontext

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString: AppendString writes what json.Marshal writes.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "<html>&", "tab\t", "é", "\xff", "\u2028",
		"del\x7f", "\ufffd", "日本語", "é\xe2\x80", "a\u2029b", "\xed\xa0\x80", "ann@exämple.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Fatalf("AppendString(%q) = %s, want x%s", s, got, want)
		}
	})
}

// FuzzString: in valid UTF-8 (String's contract), a string String reads
// decodes to the same with json.Unmarshal, and ends where String says.
func FuzzString(f *testing.F) {
	for _, s := range []string{`"a"`, `""`, `"a\"b"`, `"x" ,`, `"unterminated`, `x`, "\"\x01\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, end, ok := String(data, 0)
		if !ok || !utf8.Valid(data) {
			return
		}
		var want string
		if err := json.Unmarshal(data[:end], &want); err != nil {
			t.Fatalf("String(%q) read %q, but json.Unmarshal of %q fails: %v", data, got, data[:end], err)
		}
		if string(got) != want {
			t.Fatalf("String(%q) = %q, json.Unmarshal gives %q", data, got, want)
		}
	})
}

func TestSkipSpace(t *testing.T) {
	tests := []struct {
		in   string
		from int
		want int
	}{
		{"", 0, 0},
		{" \t\r\n{", 0, 4},
		{"{ ", 1, 2},
		{"a", 0, 0},
	}
	for _, tt := range tests {
		if got := SkipSpace([]byte(tt.in), tt.from); got != tt.want {
			t.Errorf("SkipSpace(%q, %d) = %d, want %d", tt.in, tt.from, got, tt.want)
		}
	}
}

// BenchmarkAppendString against json.Marshal, in the same run.
func BenchmarkAppendString(b *testing.B) {
	for _, s := range []string{"chat:lobby", "Zoë Åkesson", "a<b"} {
		b.Run(s+"/json.Marshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				json.Marshal(s)
			}
		})
		b.Run(s+"/AppendString", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for b.Loop() {
				buf = AppendString(buf[:0], s)
			}
		})
	}
}
