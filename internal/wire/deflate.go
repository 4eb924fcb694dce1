package wire

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Compression levels a Compression accepts: flate's, from fastest to smallest.
const (
	MinCompressionLevel = flate.BestSpeed
	MaxCompressionLevel = flate.BestCompression
)

// ErrInflatedTooLarge is returned by Inflate when a message inflates past its
// limit; the caller closes the connection with 1009.
var ErrInflatedTooLarge = errors.New("wire: inflated message over the size limit")

// ErrCorruptDeflate is returned by Inflate for data that is not a valid
// deflate stream.
var ErrCorruptDeflate = errors.New("wire: corrupt deflate data")

// deflateTail ends every compressed message on the wire and is stripped by
// the sender (RFC 7692, section 7.2.1): the empty stored block of a sync flush.
var deflateTail = [4]byte{0x00, 0x00, 0xff, 0xff}

// Compression compresses WebSocket messages for permessage-deflate (RFC 7692)
// without context takeover: each message is compressed on its own, so one
// compressed frame serves every connection that negotiated the extension. Its
// methods are safe for concurrent use.
type Compression struct {
	level   int
	minSize int
	writers sync.Pool // *deflater at level
}

type deflater struct {
	fw  *flate.Writer
	out appendWriter
}

// appendWriter collects what the flate writer produces.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// NewCompression returns a Compression at level (MinCompressionLevel to
// MaxCompressionLevel) that leaves messages shorter than minSize bytes
// uncompressed.
func NewCompression(level, minSize int) (*Compression, error) {
	if level < MinCompressionLevel || level > MaxCompressionLevel {
		return nil, fmt.Errorf("wire: compression level %d is not between %d and %d", level, MinCompressionLevel, MaxCompressionLevel)
	}
	if minSize < 0 {
		return nil, fmt.Errorf("wire: compression minimum size %d is negative", minSize)
	}
	return &Compression{level: level, minSize: minSize}, nil
}

// Level returns the flate level messages are compressed at.
func (c *Compression) Level() int { return c.level }

// MinSize returns the size below which messages go uncompressed.
func (c *Compression) MinSize() int { return c.minSize }

// AppendFrame appends payload as one final server frame with the given opcode
// (text or binary): compressed, with RSV1 set, when it is at least MinSize
// bytes and compression makes it smaller; as it is otherwise. Either way a
// client that negotiated permessage-deflate reads it.
func (c *Compression) AppendFrame(dst []byte, opcode byte, payload []byte) []byte {
	if len(payload) < c.minSize || len(payload) == 0 {
		return AppendWebSocketFrame(dst, opcode, payload)
	}
	d, _ := c.writers.Get().(*deflater)
	if d == nil {
		fw, _ := flate.NewWriter(nil, c.level) // the level was checked by NewCompression
		d = &deflater{fw: fw}
	}
	d.out.b = d.out.b[:0]
	d.fw.Reset(&d.out)
	_, _ = d.fw.Write(payload) // appendWriter does not fail
	_ = d.fw.Flush()
	z := d.out.b[:len(d.out.b)-len(deflateTail)] // a sync flush ends with the tail
	if len(z) < len(payload) {
		dst = appendHeader(dst, 0x80|0x40|opcode, len(z))
		dst = append(dst, z...)
	} else {
		dst = AppendWebSocketFrame(dst, opcode, payload)
	}
	if cap(d.out.b) > 1<<20 {
		d.out.b = nil // do not keep the buffer of an outsized message
	}
	c.writers.Put(d)
	return dst
}

// inflater is a flate reader with its input, reused through inflaters.
type inflater struct {
	fr  io.ReadCloser
	src messageReader
}

// inflaters holds idle inflaters: each carries a 32 KiB window, so they are
// shared rather than kept per connection. Immutable but for the pool's own
// synchronised state.
var inflaters sync.Pool

// messageReader yields a compressed message and then the tail the sender
// stripped, then a final empty stored block so that the flate reader ends
// with io.EOF. It is an io.ByteReader, so flate reads it without a bufio.Reader.
type messageReader struct {
	msg  []byte
	tail []byte
}

// endBlocks is the stripped tail, then an empty final stored block.
var endBlocks = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func (r *messageReader) Read(p []byte) (int, error) {
	if len(r.msg) > 0 {
		n := copy(p, r.msg)
		r.msg = r.msg[n:]
		return n, nil
	}
	if len(r.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.tail)
	r.tail = r.tail[n:]
	return n, nil
}

func (r *messageReader) ReadByte() (byte, error) {
	if len(r.msg) > 0 {
		b := r.msg[0]
		r.msg = r.msg[1:]
		return b, nil
	}
	if len(r.tail) == 0 {
		return 0, io.EOF
	}
	b := r.tail[0]
	r.tail = r.tail[1:]
	return b, nil
}

// Inflate appends to dst the message compressed in msg, a permessage-deflate
// payload without context takeover (the sender stripped the sync flush tail).
// It stops as soon as the result would pass limit bytes and returns
// ErrInflatedTooLarge, so a small message that inflates to gigabytes costs no
// more than limit bytes of memory; data that is not deflate gives
// ErrCorruptDeflate.
func Inflate(dst, msg []byte, limit int) ([]byte, error) {
	in, _ := inflaters.Get().(*inflater)
	if in == nil {
		in = &inflater{}
	}
	in.src = messageReader{msg: msg, tail: endBlocks}
	if in.fr == nil {
		in.fr = flate.NewReader(&in.src)
	} else {
		_ = in.fr.(flate.Resetter).Reset(&in.src, nil)
	}
	defer func() {
		in.src = messageReader{}
		inflaters.Put(in)
	}()
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			// Grow by what is likely (a few times the input), never past
			// limit+1: one byte over is enough to know it is too large.
			dst = slices.Grow(dst, min(max(2*(len(dst)-start), 4*len(msg), 512), limit+1-(len(dst)-start)))
		}
		n, err := in.fr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst[:start+limit], ErrInflatedTooLarge
		}
		switch {
		case err == io.EOF:
			return dst, nil
		case err != nil:
			return dst, fmt.Errorf("%w: %v", ErrCorruptDeflate, err)
		}
	}
}
