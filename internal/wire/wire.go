// Package wire holds how tether's messages are framed on each transport: the
// wire formats, WebSocket frames written by the server, and batches of
// publications framed once per format and shared by every subscriber.
//
// It knows nothing of channels, sessions or connections, and must not do I/O.
package wire

import (
	"sync"

	"github.com/tetherhq/tether/protocol"
)

// Format is a wire format: how one JSON message is framed on a transport.
type Format int

// The wire formats a batch can be framed in.
const (
	// WebSocket frames each message as an unmasked WebSocket text frame.
	WebSocket Format = iota
	// Line ends each message with a newline.
	Line
	formatCount
)

// AppendFrame appends payload framed for w to dst.
func (w Format) AppendFrame(dst, payload []byte) []byte {
	switch w {
	case WebSocket:
		return AppendWebSocketFrame(dst, 0x1, payload)
	case Line:
		dst = append(dst, payload...)
		return append(dst, '\n')
	}
	panic("wire: unknown wire format")
}

// AppendWebSocketFrame appends one final, unmasked server frame with the given
// opcode (0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong).
func AppendWebSocketFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, 0x80|opcode, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x80|opcode, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|opcode, 127,
			byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// Batch is a run of consecutive publications of one channel, delivered together:
// a subscriber gets them in one write, each still its own frame.
type Batch struct {
	// Pubs are the publications, in offset order. Each is already encoded.
	Pubs   []*protocol.Publication
	frames [formatCount]wireFrames
}

type wireFrames struct {
	once sync.Once
	buf  []byte
	ends []int // ends[i] is where Pubs[i]'s frame ends in buf
}

// Frames returns Pubs[from:] framed for w, one frame after another. The bytes are
// built once per batch and wire format and shared: callers must not modify them.
func (b *Batch) Frames(w Format, from int) []byte {
	f := &b.frames[w]
	f.once.Do(func() {
		size := 0
		for _, p := range b.Pubs {
			raw, _ := p.Encode() // encoded by Publish: cannot fail
			size += len(raw) + 10
		}
		f.buf = make([]byte, 0, size)
		f.ends = make([]int, len(b.Pubs))
		for i, p := range b.Pubs {
			raw, _ := p.Encode()
			f.buf = w.AppendFrame(f.buf, raw)
			f.ends[i] = len(f.buf)
		}
	})
	if from == 0 {
		return f.buf
	}
	return f.buf[f.ends[from-1]:]
}
