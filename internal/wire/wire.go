// Package wire holds how tether's messages are framed on each transport: the
// wire formats, WebSocket frames written by the server (compressed with
// permessage-deflate or not), inflation of the messages clients compress, and
// batches of publications framed once per format and shared by every
// subscriber.
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
	// WebSocketDeflate is WebSocket for connections that negotiated
	// permessage-deflate: a batch's publications are compressed, once, with
	// the batch's Compression. AppendFrame leaves a single message (a reply)
	// uncompressed, which such a connection reads as well.
	WebSocketDeflate
	formatCount
)

// AppendFrame appends payload framed for w to dst.
func (w Format) AppendFrame(dst, payload []byte) []byte {
	switch w {
	case WebSocket, WebSocketDeflate:
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
	return append(appendHeader(dst, 0x80|opcode, len(payload)), payload...)
}

// appendHeader appends an unmasked frame header: b0 (FIN, RSV and opcode) and
// the payload length n.
func appendHeader(dst []byte, b0 byte, n int) []byte {
	switch {
	case n < 126:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return append(dst, b0, 126, byte(n>>8), byte(n))
	default:
		return append(dst, b0, 127,
			byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// Batch is a run of consecutive publications of one channel, delivered together:
// a subscriber gets them in one write, each still its own frame.
type Batch struct {
	// Pubs are the publications, in offset order. Each is already encoded.
	Pubs []*protocol.Publication
	// Compression compresses the publications for WebSocketDeflate; nil
	// frames them uncompressed there too.
	Compression *Compression
	frames      [formatCount]wireFrames
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
			if w == WebSocketDeflate && b.Compression != nil {
				f.buf = b.Compression.AppendFrame(f.buf, 0x1, raw)
			} else {
				f.buf = w.AppendFrame(f.buf, raw)
			}
			f.ends[i] = len(f.buf)
		}
	})
	if from == 0 {
		return f.buf
	}
	return f.buf[f.ends[from-1]:]
}
