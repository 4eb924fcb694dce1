package wire

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// BenchmarkBatchFrames builds a batch's shared frames: the once-per-publication
// outbound work.
func BenchmarkBatchFrames(b *testing.B) {
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("pubs=%d", n), func(b *testing.B) {
			pubs := make([]*protocol.Publication, n)
			for i := range pubs {
				pubs[i] = &protocol.Publication{Channel: "news", Epoch: "e", Offset: uint64(i + 1), Data: json.RawMessage(`{"text":"hello, world"}`)}
				if _, err := pubs[i].Encode(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				batch := &Batch{Pubs: pubs}
				_ = batch.Frames(WebSocket, 0)
			}
		})
	}
}

func BenchmarkAppendWebSocketFrame(b *testing.B) {
	for _, size := range []int{64, 1024, 70_000} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			payload := make([]byte, size)
			dst := make([]byte, 0, size+16)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				dst = AppendWebSocketFrame(dst[:0], 0x1, payload)
			}
		})
	}
}

func TestAppendWebSocketFrame(t *testing.T) {
	tests := []struct {
		size   int
		header []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xFF, 0xFF}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	}
	for _, tt := range tests {
		payload := make([]byte, tt.size)
		got := AppendWebSocketFrame([]byte("x"), 0x1, payload)
		if string(got[1:1+len(tt.header)]) != string(tt.header) || len(got) != 1+len(tt.header)+tt.size {
			t.Errorf("size %d: header % x, length %d; want % x, %d", tt.size, got[1:1+len(tt.header)], len(got), tt.header, 1+len(tt.header)+tt.size)
		}
	}
}

func TestBatchFramesFrom(t *testing.T) {
	pubs := make([]*protocol.Publication, 3)
	for i := range pubs {
		pubs[i] = &protocol.Publication{Channel: "c", Epoch: "e", Offset: uint64(i + 1), Data: json.RawMessage(`1`)}
		if _, err := pubs[i].Encode(); err != nil {
			t.Fatal(err)
		}
	}
	b := &Batch{Pubs: pubs}
	for _, f := range []Format{WebSocket, Line} {
		for from := range pubs {
			var want []byte
			for _, p := range pubs[from:] {
				raw, _ := p.Encode()
				want = f.AppendFrame(want, raw)
			}
			if got := b.Frames(f, from); string(got) != string(want) {
				t.Errorf("format %d from %d: %q, want %q", f, from, got, want)
			}
		}
	}
}
