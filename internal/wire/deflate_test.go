package wire

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// splitFrame returns the RSV1 bit and payload of the one server frame in b.
func splitFrame(t testing.TB, b []byte) (rsv1 bool, opcode byte, payload []byte) {
	t.Helper()
	if len(b) < 2 || b[0]&0x80 == 0 || b[1]&0x80 != 0 {
		t.Fatalf("not a final unmasked frame: % x", b[:min(len(b), 10)])
	}
	n, hdr := int(b[1]&0x7f), 2
	switch n {
	case 126:
		n, hdr = int(b[2])<<8|int(b[3]), 4
	case 127:
		n, hdr = 0, 10
		for _, c := range b[2:10] {
			n = n<<8 | int(c)
		}
	}
	if len(b) != hdr+n {
		t.Fatalf("frame of %d bytes says %d of payload after a %d-byte header", len(b), n, hdr)
	}
	return b[0]&0x40 != 0, b[0] & 0x0f, b[hdr:]
}

// jsonPayload returns a realistic JSON message of about n bytes.
func jsonPayload(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"user":"user-%d","text":"message number %d in the room","ts":%d}`, i, i%7, i, 1700000000+i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestCompressionAppendFrame(t *testing.T) {
	c, err := NewCompression(1, 64)
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 1000)
	_, _ = rand.Read(random)
	tests := []struct {
		name       string
		payload    []byte
		compressed bool
	}{
		{"empty", nil, false},
		{"under the minimum size", []byte(`{"op":"pub"}`), false},
		{"JSON", jsonPayload(1500), true},
		{"large JSON (16-bit length)", jsonPayload(70_000), true},
		{"incompressible", random, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := c.AppendFrame([]byte("prefix"), 0x1, tt.payload)
			if !bytes.HasPrefix(f, []byte("prefix")) {
				t.Fatal("dst's bytes were not kept")
			}
			rsv1, op, p := splitFrame(t, f[len("prefix"):])
			if op != 0x1 || rsv1 != tt.compressed {
				t.Fatalf("opcode %d, RSV1 %v; want 1, %v", op, rsv1, tt.compressed)
			}
			got := p
			if rsv1 {
				if len(p) >= len(tt.payload) {
					t.Fatalf("compressed to %d bytes from %d", len(p), len(tt.payload))
				}
				if got, err = Inflate(nil, p, 1<<20); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, tt.payload) {
				t.Fatalf("payload after inflation differs (%d bytes, want %d)", len(got), len(tt.payload))
			}
		})
	}
}

func TestNewCompressionRejects(t *testing.T) {
	for _, tt := range []struct{ level, min int }{{0, 0}, {10, 0}, {-1, 0}, {1, -1}} {
		if _, err := NewCompression(tt.level, tt.min); err == nil {
			t.Errorf("NewCompression(%d, %d) accepted", tt.level, tt.min)
		}
	}
}

// deflateRaw compresses b the way a client with no context takeover does:
// one sync flush, its tail stripped; final marks the last block BFINAL instead.
func deflateRaw(t testing.TB, b []byte, final bool) []byte {
	t.Helper()
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	_, _ = w.Write(b)
	if final {
		_ = w.Close()
		return out.Bytes()
	}
	_ = w.Flush()
	return bytes.TrimSuffix(out.Bytes(), deflateTail[:])
}

func TestInflate(t *testing.T) {
	msg := jsonPayload(3000)
	tests := []struct {
		name  string
		in    []byte
		limit int
		want  []byte
		err   error
	}{
		{"sync flush", deflateRaw(t, msg, false), 1 << 20, msg, nil},
		{"final block", deflateRaw(t, msg, true), 1 << 20, msg, nil},
		{"exactly the limit", deflateRaw(t, msg, false), len(msg), msg, nil},
		{"one byte over", deflateRaw(t, msg, false), len(msg) - 1, nil, ErrInflatedTooLarge},
		{"empty message", deflateRaw(t, nil, false), 10, []byte{}, nil},
		{"one empty stored block (as browsers send an empty message)", []byte{0x00}, 10, []byte{}, nil},
		{"no input at all: not deflate", nil, 10, nil, ErrCorruptDeflate},
		{"not deflate", []byte{0xff, 0xff, 0xff, 0xff}, 1 << 20, nil, ErrCorruptDeflate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Inflate(nil, tt.in, tt.limit)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if len(got) > tt.limit {
				t.Fatalf("returned %d bytes, over the limit %d", len(got), tt.limit)
			}
			if tt.err == nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("inflated %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// TestInflateBombBounded: 10 MB of zeros compress to about 10 KB; inflating
// them with a 64 KiB limit fails at once and allocates little.
func TestInflateBombBounded(t *testing.T) {
	bomb := deflateRaw(t, make([]byte, 10<<20), false)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Inflate(nil, bomb, 64<<10)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrInflatedTooLarge) {
		t.Fatalf("err %v, want ErrInflatedTooLarge", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("inflating the bomb allocated %d bytes, want under 1 MiB", alloc)
	}
}

// TestBatchFramesDeflate: publications are compressed once per batch, and
// what a deflate subscriber inflates is what a plain one reads.
func TestBatchFramesDeflate(t *testing.T) {
	c, err := NewCompression(1, 128)
	if err != nil {
		t.Fatal(err)
	}
	pubs := []*protocol.Publication{
		{Channel: "c", Epoch: "e", Offset: 1, Data: json.RawMessage(jsonPayload(1500))},
		{Channel: "c", Epoch: "e", Offset: 2, Data: json.RawMessage(`1`)}, // under the minimum: plain
	}
	for _, p := range pubs {
		if _, err := p.Encode(); err != nil {
			t.Fatal(err)
		}
	}
	b := &Batch{Pubs: pubs, Compression: c}
	z := b.Frames(WebSocketDeflate, 0)
	if again := b.Frames(WebSocketDeflate, 0); &again[0] != &z[0] {
		t.Fatal("second call built the frames again")
	}
	plain := b.Frames(WebSocket, 0)
	if len(z) >= len(plain) {
		t.Fatalf("deflate frames %d bytes, plain %d", len(z), len(plain))
	}
	var got [][]byte
	var rsv []bool
	for rest := z; len(rest) > 0; {
		n := int(rest[1] & 0x7f)
		hdr := 2
		if n == 126 {
			n, hdr = int(rest[2])<<8|int(rest[3]), 4
		}
		r1, _, p := splitFrame(t, rest[:hdr+n])
		if r1 {
			if p, err = Inflate(nil, p, 1<<20); err != nil {
				t.Fatal(err)
			}
		}
		got, rsv = append(got, p), append(rsv, r1)
		rest = rest[hdr+n:]
	}
	if len(got) != 2 || !rsv[0] || rsv[1] {
		t.Fatalf("%d frames, RSV1 %v; want 2, [true false]", len(got), rsv)
	}
	for i, p := range pubs {
		raw, _ := p.Encode()
		if !bytes.Equal(got[i], raw) {
			t.Errorf("publication %d: inflated %q, want %q", i, got[i], raw)
		}
	}
	if tail := b.Frames(WebSocketDeflate, 1); !bytes.Equal(tail, z[len(z)-len(tail):]) || tail[0]&0x40 != 0 {
		t.Fatalf("frames from 1: % x", tail)
	}
	if nb := (&Batch{Pubs: pubs}).Frames(WebSocketDeflate, 0); !bytes.Equal(nb, plain) {
		t.Fatal("without a Compression, WebSocketDeflate frames differ from WebSocket's")
	}
}

// FuzzInflate: whatever the input, Inflate returns at most limit bytes and
// never panics; what it accepts compresses and inflates back to itself.
func FuzzInflate(f *testing.F) {
	f.Add(deflateRaw(f, jsonPayload(500), false), 1000)
	f.Add(deflateRaw(f, []byte("hello"), true), 3)
	f.Add(deflateRaw(f, make([]byte, 1<<16), false), 100)
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, 10)
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, 10)
	c, _ := NewCompression(1, 0)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		limit = max(limit, 0) % (1 << 20)
		out, err := Inflate(nil, in, limit)
		if len(out) > limit {
			t.Fatalf("%d bytes out, limit %d", len(out), limit)
		}
		if err != nil {
			if !errors.Is(err, ErrInflatedTooLarge) && !errors.Is(err, ErrCorruptDeflate) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		frame := c.AppendFrame(nil, 0x2, out)
		rsv1, _, p := splitFrame(t, frame)
		if rsv1 {
			if p, err = Inflate(nil, p, limit); err != nil {
				t.Fatalf("own frame: %v", err)
			}
		}
		if !bytes.Equal(p, out) {
			t.Fatal("round trip differs")
		}
	})
}

func BenchmarkCompressionAppendFrame(b *testing.B) {
	for _, level := range []int{1, 6} {
		for _, size := range []int{1500, 16 << 10} {
			b.Run(fmt.Sprintf("level=%d/bytes=%d", level, size), func(b *testing.B) {
				c, _ := NewCompression(level, 0)
				payload := jsonPayload(size)
				dst := make([]byte, 0, size+16)
				b.ReportAllocs()
				b.SetBytes(int64(len(payload)))
				for b.Loop() {
					dst = c.AppendFrame(dst[:0], 0x1, payload)
				}
			})
		}
	}
}

func BenchmarkInflate(b *testing.B) {
	payload := jsonPayload(1500)
	z := deflateRaw(b, payload, false)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var err error
		if dst, err = Inflate(dst[:0], z, 1<<16); err != nil {
			b.Fatal(err)
		}
	}
}
