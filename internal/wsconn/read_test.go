package wsconn

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tetherhq/tether/protocol"
)

// record is what a reader handed its handler, in order.
type record struct {
	events []string
	msgs   [][]byte
	ops    []byte
}

func (r *record) message(op byte, p []byte, compressed bool) {
	r.events = append(r.events, fmt.Sprintf("msg op=%d len=%d z=%v", op, len(p), compressed))
	r.msgs = append(r.msgs, slices.Clone(p))
	r.ops = append(r.ops, op)
}
func (r *record) ping(p []byte)      { r.events = append(r.events, fmt.Sprintf("ping %q", p)) }
func (r *record) pong()              { r.events = append(r.events, "pong") }
func (r *record) peerClose(code int) { r.events = append(r.events, fmt.Sprintf("close %d", code)) }

// frame returns a masked client frame: b0 (FIN, RSV, opcode), then payload.
func frame(b0 byte, payload []byte) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// compress deflates p as a client without context takeover does.
func compress(p []byte) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(out.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

const testMax = 1024

func TestReader(t *testing.T) {
	text := func(s string) []byte { return frame(0x81, []byte(s)) }
	tests := []struct {
		name    string
		in      []byte
		deflate bool
		want    []string
		code    int // 0: no violation
	}{
		{"text", text("hello"), false, []string{"msg op=1 len=5 z=false"}, 0},
		{"empty text and empty binary", cat(text(""), frame(0x82, nil)), false,
			[]string{"msg op=1 len=0 z=false", "msg op=2 len=0 z=false"}, 0},
		{"fragments with a ping between", cat(frame(0x01, []byte("hel")), frame(0x89, []byte("p")), frame(0x00, []byte("lo")), frame(0x80, []byte("!"))), false,
			[]string{"ping \"p\"", "msg op=1 len=6 z=false"}, 0},
		{"empty fragments", cat(frame(0x02, nil), frame(0x80, nil)), false, []string{"msg op=2 len=0 z=false"}, 0},
		{"UTF-8 sequence cut between fragments", cat(frame(0x01, []byte("\xe2\x82")), frame(0x80, []byte("\xac"))), false,
			[]string{"msg op=1 len=3 z=false"}, 0},
		{"16-bit length", frame(0x82, make([]byte, 300)), false, []string{"msg op=2 len=300 z=false"}, 0},
		{"pong", frame(0x8A, []byte("x")), false, []string{"pong"}, 0},
		{"close without code", frame(0x88, nil), false, []string{"close 1005"}, 0},
		{"close with code and reason", frame(0x88, closePayload(1001, "bye")), false, []string{"close 1001"}, 0},
		{"close 4999", frame(0x88, closePayload(4999, "")), false, []string{"close 4999"}, 0},
		{"compressed", frame(0xC1, compress([]byte(strings.Repeat("abc", 100)))), true, []string{"msg op=1 len=300 z=true"}, 0},
		{"compressed in fragments", cat(frame(0x41, compress([]byte("hello"))[:3]), frame(0x80, compress([]byte("hello"))[3:])), true,
			[]string{"msg op=1 len=5 z=true"}, 0},

		{"unmasked frame", []byte{0x81, 0x02, 'h', 'i'}, false, nil, protocol.CloseProtocolError},
		{"stray continuation", frame(0x80, []byte("x")), false, nil, protocol.CloseProtocolError},
		{"text inside a fragmented message", cat(frame(0x01, []byte("a")), text("b")), false, nil, protocol.CloseProtocolError},
		{"RSV1 without deflate", frame(0xC1, []byte("x")), false, nil, protocol.CloseProtocolError},
		{"RSV2", frame(0xA1, []byte("x")), true, nil, protocol.CloseProtocolError},
		{"RSV3", frame(0x91, []byte("x")), true, nil, protocol.CloseProtocolError},
		{"RSV1 on a continuation", cat(frame(0x41, []byte("x")), frame(0xC0, []byte("y"))), true, nil, protocol.CloseProtocolError},
		{"RSV1 on a ping", frame(0xC9, nil), true, nil, protocol.CloseProtocolError},
		{"reserved data opcode", frame(0x83, nil), false, nil, protocol.CloseProtocolError},
		{"reserved control opcode", frame(0x8B, nil), false, nil, protocol.CloseProtocolError},
		{"fragmented ping", frame(0x09, nil), false, nil, protocol.CloseProtocolError},
		{"ping over 125 bytes", frame(0x89, make([]byte, 126)), false, nil, protocol.CloseProtocolError},
		{"length with its top bit set", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, false, nil, protocol.CloseProtocolError},
		{"close with a one-byte payload", frame(0x88, []byte{3}), false, nil, protocol.CloseProtocolError},
		{"close code 999", frame(0x88, closePayload(999, "")), false, nil, protocol.CloseProtocolError},
		{"close code 1005", frame(0x88, closePayload(1005, "")), false, nil, protocol.CloseProtocolError},
		{"close code 2000", frame(0x88, closePayload(2000, "")), false, nil, protocol.CloseProtocolError},
		{"close reason not UTF-8", frame(0x88, closePayload(1000, "\xff")), false, nil, protocol.CloseInvalidPayload},
		{"text not UTF-8", text("\xce\xba\xe1\xbd\xb9\xed\xa0\x80"), false, nil, protocol.CloseInvalidPayload},
		{"fragment not UTF-8, fails before the end", frame(0x01, []byte("ok\xff")), false, nil, protocol.CloseInvalidPayload},
		{"text ends inside a sequence", cat(frame(0x01, []byte("a")), frame(0x80, []byte("\xe2\x82"))), false, nil, protocol.CloseInvalidPayload},
		{"message over the limit", frame(0x82, make([]byte, testMax+1)), false, nil, protocol.CloseTooBig},
		{"fragments over the limit", cat(frame(0x02, make([]byte, testMax)), frame(0x80, []byte("x"))), false, nil, protocol.CloseTooBig},
		{"declared length far over the limit", []byte{0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}, false, nil, protocol.CloseTooBig},
		{"compression bomb", frame(0xC2, compress(make([]byte, 1<<20))), true, nil, protocol.CloseTooBig},
		{"corrupt compressed data", frame(0xC2, []byte{0xff, 0xff, 0xff}), true, nil, protocol.CloseInvalidPayload},
		{"compressed text not UTF-8", frame(0xC1, compress([]byte("\xff\xfe"))), true, nil, protocol.CloseInvalidPayload},
		{"close frame with RSV bits: refused, not taken for the client's close", frame(0xF8, nil), false, nil, protocol.CloseProtocolError},
		{"close frame over 125 bytes: refused", frame(0x88, closePayload(1000, strings.Repeat("*", 124))), false, nil, protocol.CloseProtocolError},
		{"only the close frame after a violation", cat(frame(0x80, nil), text("dropped"), frame(0x88, closePayload(1000, ""))), false,
			[]string{"close 1000"}, protocol.CloseProtocolError},
	}
	for _, tt := range tests {
		for _, chunk := range []int{len(tt.in), 1, 3} {
			t.Run(fmt.Sprintf("%s/chunks of %d", tt.name, chunk), func(t *testing.T) {
				r := &reader{max: testMax, deflate: tt.deflate}
				h := &record{}
				var err error
				for in := tt.in; len(in) > 0; in = in[min(chunk, len(in)):] {
					if e := r.feed(slices.Clone(in[:min(chunk, len(in))]), h); e != nil && err == nil {
						err = e
					} else if e != nil {
						t.Fatalf("second violation reported: %v", e)
					}
				}
				code := 0
				var ce *closeError
				if errors.As(err, &ce) {
					code = ce.code
				} else if err != nil {
					t.Fatalf("error %v is not a *closeError", err)
				}
				if code != tt.code {
					t.Fatalf("close code %d (%v), want %d", code, err, tt.code)
				}
				if !slices.Equal(h.events, tt.want) {
					t.Fatalf("events %q, want %q", h.events, tt.want)
				}
				if tt.code == 0 && r.p != nil {
					t.Fatalf("an idle reader holds %+v", *r.p)
				}
			})
		}
	}
}

func TestReaderPayloads(t *testing.T) {
	r := &reader{max: 1 << 20, deflate: true}
	h := &record{}
	big := bytes.Repeat([]byte("0123456789"), 10_000)
	in := cat(frame(0x82, big), frame(0xC1, compress([]byte(`{"a":1}`))), frame(0x01, []byte("frag")), frame(0x80, []byte("ment")))
	if err := r.feed(in, h); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{big, []byte(`{"a":1}`), []byte("fragment")}
	if len(h.msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(h.msgs), len(want))
	}
	for i := range want {
		if !bytes.Equal(h.msgs[i], want[i]) {
			t.Errorf("message %d: %d bytes %q..., want %d bytes", i, len(h.msgs[i]), h.msgs[i][:min(10, len(h.msgs[i]))], len(want[i]))
		}
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		ok   bool
		full bool
	}{
		{"", 0, true, true},
		{"abc", 3, true, true},
		{"a\xe2\x82", 1, true, false},
		{"a\xe2\x82\xac", 4, true, true},
		{"a\xff", 1, false, false},
		{"\xf4\x90\x80\x80", 0, false, false}, // past U+10FFFF
		{"\xed\xa0\x80", 0, false, false},     // a surrogate
	}
	for _, tt := range tests {
		n, ok := validPrefix([]byte(tt.in))
		if n != tt.n || ok != tt.ok {
			t.Errorf("validPrefix(%q) = %d, %v; want %d, %v", tt.in, n, ok, tt.n, tt.ok)
		}
		if tt.full != utf8.ValidString(tt.in) {
			t.Errorf("case %q: utf8.Valid disagrees with the table", tt.in)
		}
	}
}

// discard is a frameHandler that keeps nothing.
type discard struct{ n int }

func (d *discard) message(_ byte, p []byte, _ bool) { d.n += len(p) }
func (d *discard) ping([]byte)                      {}
func (d *discard) pong()                            {}
func (d *discard) peerClose(int)                    {}

// BenchmarkReader: one 64-byte text frame read, unmasked and checked, as
// each echo is.
func BenchmarkReader(b *testing.B) {
	in := frame(0x81, bytes.Repeat([]byte("e"), 64))
	r := &reader{max: 64 << 10}
	h := &discard{}
	buf := make([]byte, len(in))
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		copy(buf, in)
		if err := r.feed(buf, h); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzReader feeds arbitrary client bytes, whole and in chunks: the reader
// must not panic, must see the same thing whatever the chunking, must hand
// over only messages within the limit and valid UTF-8 text, and must report
// no more than one violation.
func FuzzReader(f *testing.F) {
	f.Add(cat(frame(0x81, []byte("hi")), frame(0x88, closePayload(1000, ""))), uint8(1), false)
	f.Add(cat(frame(0x01, []byte("\xe2")), frame(0x89, nil), frame(0x80, []byte("\x82\xac"))), uint8(2), false)
	f.Add(frame(0xC1, compress([]byte(strings.Repeat("ab", 300)))), uint8(5), true)
	f.Add(frame(0xC2, compress(make([]byte, 4096))), uint8(7), true)
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, uint8(3), false)
	f.Add(cat(frame(0x80, nil), frame(0x88, nil)), uint8(1), false)
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, deflate bool) {
		run := func(size int) ([]string, int) {
			r := &reader{max: testMax, deflate: deflate}
			h := &record{}
			code := 0
			for rest := in; len(rest) > 0; {
				n := min(size, len(rest))
				err := r.feed(slices.Clone(rest[:n]), h)
				rest = rest[n:]
				if err == nil {
					continue
				}
				var ce *closeError
				if !errors.As(err, &ce) || code != 0 {
					t.Fatalf("error %v after code %d", err, code)
				}
				code = ce.code
			}
			for i, m := range h.msgs {
				if len(m) > testMax {
					t.Fatalf("message %d of %d bytes, over the limit", i, len(m))
				}
			}
			for i, m := range h.msgs {
				if h.ops[i] == opText && !utf8.Valid(m) {
					t.Fatalf("message %d: invalid UTF-8 text delivered", i)
				}
			}
			return h.events, code
		}
		whole, code := run(len(in) + 1)
		split, splitCode := run(int(chunk%16) + 1)
		if splitCode != code || !slices.Equal(whole, split) {
			t.Fatalf("whole: %q, code %d; in chunks of %d: %q, code %d", whole, code, chunk%16+1, split, splitCode)
		}
	})
}

// TestReaderRefusedCloseIsFinal: a refused close frame is the client's last
// word (the connection is dropped once the answer is out); other refusals
// wait for the client's close frame.
func TestReaderRefusedCloseIsFinal(t *testing.T) {
	tests := []struct {
		in    []byte
		final bool
	}{
		{frame(0x88, []byte{3}), true},
		{frame(0x88, closePayload(1004, "")), true},
		{frame(0xC8, nil), true},
		{frame(0x80, nil), false},
		{frame(0x81, []byte{0xff}), false},
	}
	for _, tt := range tests {
		err := (&reader{max: testMax}).feed(tt.in, &record{})
		var ce *closeError
		if !errors.As(err, &ce) || ce.final != tt.final {
			t.Errorf("% x: %v, final %v; want final %v", tt.in[:2], err, ce != nil && ce.final, tt.final)
		}
	}
}
