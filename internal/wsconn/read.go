package wsconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tetherhq/tether/internal/wire"
	"github.com/tetherhq/tether/protocol"
)

// Opcodes (RFC 6455, section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// closeError is why the reader refuses what a client sent: the close code to
// answer with (1002, 1007 or 1009) and a short reason for the close frame.
type closeError struct {
	code   int
	reason string
	final  bool // the refused frame was the client's close frame: no other will come
}

func (e *closeError) Error() string {
	return fmt.Sprintf("wsconn: close %d: %s", e.code, e.reason)
}

func protocolError(reason string) *closeError {
	return &closeError{code: protocol.CloseProtocolError, reason: reason}
}

// frameHandler receives what a reader parses. A payload is valid only during
// the call.
type frameHandler interface {
	// message is a whole text or binary message, inflated when the client
	// compressed it (compressed says so), valid UTF-8 when it is text.
	message(op byte, payload []byte, compressed bool)
	// ping is a ping frame, pong a pong frame.
	ping(payload []byte)
	pong()
	// peerClose is the client's close frame, its code checked: 1005 when the
	// frame had none.
	peerClose(code int)
}

// reader turns the bytes a client sends into messages, as they arrive, and
// checks everything RFC 6455 asks of a server: client frames masked, reserved
// bits and opcodes unused (RSV1 only with permessage-deflate, RFC 7692),
// control frames short and unfragmented, continuations only within a message,
// messages within the size limit after inflation, text valid UTF-8, close
// frames well formed. The first violation comes back from feed as a
// *closeError; from then on the reader only looks for the client's close frame.
//
// Between messages a reader holds no buffer: an idle connection costs its
// fixed fields only. A reader is used by one goroutine at a time.
type reader struct {
	p       *partial // what is carried from one feed to the next; nil when nothing
	max     int32    // the largest message, in bytes, after inflation
	deflate bool     // permessage-deflate was negotiated
	failed  bool     // a violation was reported: frames are skipped
}

// partial is a reader's state between feeds: an incomplete frame, a
// fragmented message.
type partial struct {
	pending    []byte // the start of a frame whose end has not arrived yet
	msg        []byte // the fragments of the current message so far
	op         byte   // the current message's opcode; 0 when none is open
	compressed bool   // the current message is compressed
	checked    int    // msg[:checked] is known to be valid UTF-8
	skip       int    // once failed: payload bytes still to skip
	refused    bool   // once failed: the next frame is the refused one, to skip unread
}

func (r *reader) part() *partial {
	if r.p == nil {
		r.p = &partial{}
	}
	return r.p
}

// feed parses data. It returns nil or a *closeError.
func (r *reader) feed(data []byte, h frameHandler) error {
	if r.p != nil && len(r.p.pending) > 0 {
		r.p.pending = append(r.p.pending, data...)
		data = r.p.pending
	}
	var err *closeError
	for len(data) > 0 && err == nil {
		var n int
		if r.failed {
			n = r.skipFrame(data, h)
		} else {
			n, err = r.frame(data, h)
			if err != nil {
				r.failed = true
				p := r.part()
				p.msg, p.refused = nil, n == 0
				err.final = data[0]&0x0f == opClose
			}
		}
		if n == 0 && err == nil {
			break
		}
		data = data[n:]
	}
	for err != nil && len(data) > 0 { // skip what follows the violation
		n := r.skipFrame(data, h)
		if n == 0 {
			break
		}
		data = data[n:]
	}
	r.keep(data)
	if err != nil {
		return err
	}
	return nil
}

// keep carries over the unparsed rest of the input, which may be a tail of
// r.p.pending itself, or releases what the reader holds when there is none.
func (r *reader) keep(rest []byte) {
	switch {
	case len(rest) == 0:
		if r.p != nil {
			r.p.pending = nil
			if r.p.op == 0 && r.p.skip == 0 {
				r.p = nil
			}
		}
	case r.p != nil && len(r.p.pending) > 0 && &rest[len(rest)-1] == &r.p.pending[len(r.p.pending)-1]:
		r.p.pending = r.p.pending[:copy(r.p.pending, rest)]
	default:
		p := r.part()
		p.pending = append(p.pending[:0], rest...)
	}
}

// header is a frame's first bytes, decoded.
type header struct {
	fin    bool
	rsv    byte // the RSV1-3 bits, in place (0x70)
	op     byte
	masked bool
	n      uint64 // payload length
	size   int    // header length, mask included
}

// parseHeader decodes the header at the start of data; ok is false while data
// does not hold all of it.
func parseHeader(data []byte) (h header, ok bool) {
	if len(data) < 2 {
		return h, false
	}
	h = header{fin: data[0]&0x80 != 0, rsv: data[0] & 0x70, op: data[0] & 0x0f, masked: data[1]&0x80 != 0}
	h.n, h.size = uint64(data[1]&0x7f), 2
	switch h.n {
	case 126:
		h.size = 4
	case 127:
		h.size = 10
	}
	if h.masked {
		h.size += 4
	}
	if len(data) < h.size {
		return h, false
	}
	switch h.n {
	case 126:
		h.n = uint64(binary.BigEndian.Uint16(data[2:4]))
	case 127:
		h.n = binary.BigEndian.Uint64(data[2:10])
	}
	return h, true
}

// check returns the violation in a frame's first two bytes, if any.
func (r *reader) check(data []byte) *closeError {
	fin, rsv, op := data[0]&0x80 != 0, data[0]&0x70, data[0]&0x0f
	open := r.p != nil && r.p.op != 0
	switch {
	case data[1]&0x80 == 0:
		return protocolError("unmasked client frame")
	case rsv&0x30 != 0:
		return protocolError("reserved bits RSV2 or RSV3 set")
	case op >= opClose:
		switch {
		case op > opPong:
			return protocolError(fmt.Sprintf("reserved control opcode %#x", op))
		case !fin:
			return protocolError("fragmented control frame")
		case rsv != 0:
			return protocolError("reserved bit RSV1 set on a control frame")
		case data[1]&0x7f > 125:
			return protocolError("control frame payload over 125 bytes")
		}
	case op == opContinuation:
		switch {
		case !open:
			return protocolError("continuation frame with no message started")
		case rsv != 0:
			return protocolError("reserved bit RSV1 set on a continuation frame")
		}
	case op == opText || op == opBinary:
		switch {
		case open:
			return protocolError("new message before the fragmented one ended")
		case rsv != 0 && !r.deflate:
			return protocolError("reserved bit RSV1 set without permessage-deflate")
		}
	default:
		return protocolError(fmt.Sprintf("reserved data opcode %#x", op))
	}
	return nil
}

// frame handles the frame at the start of data and returns how many bytes it
// took: 0 when data does not hold all of it yet, or when the frame's header is
// refused (the frame is then left for skipFrame).
func (r *reader) frame(data []byte, h frameHandler) (int, *closeError) {
	if len(data) < 2 {
		return 0, nil
	}
	if err := r.check(data); err != nil {
		return 0, err
	}
	fh, ok := parseHeader(data)
	if !ok {
		return 0, nil
	}
	if fh.n>>63 != 0 {
		return 0, protocolError("frame length with its most significant bit set")
	}
	if fh.op < opClose {
		have := 0
		if r.p != nil {
			have = len(r.p.msg)
		}
		if fh.n > uint64(int(r.max)-have) {
			return 0, &closeError{code: protocol.CloseTooBig, reason: fmt.Sprintf("message over %d bytes", r.max)}
		}
	}
	total := fh.size + int(fh.n)
	if len(data) < total {
		return 0, nil
	}
	payload := data[fh.size:total]
	unmask(payload, data[fh.size-4:fh.size])
	return total, r.handle(fh, payload, h)
}

// handle acts on one whole, checked frame.
func (r *reader) handle(fh header, payload []byte, h frameHandler) *closeError {
	switch fh.op {
	case opPing:
		h.ping(payload)
	case opPong:
		h.pong()
	case opClose:
		code, err := closeCode(payload)
		if err != nil {
			return err
		}
		h.peerClose(code)
	case opText, opBinary:
		if fh.fin {
			return r.deliver(fh.op, fh.rsv != 0, payload, 0, h)
		}
		p := r.part()
		p.op, p.compressed, p.checked = fh.op, fh.rsv != 0, 0
		p.msg = append(p.msg[:0], payload...)
		return r.checkFragment()
	case opContinuation:
		p := r.p
		p.msg = append(p.msg, payload...)
		if !fh.fin {
			return r.checkFragment()
		}
		msg, op, compressed, checked := p.msg, p.op, p.compressed, p.checked
		p.msg, p.op, p.compressed, p.checked = nil, 0, false, 0
		return r.deliver(op, compressed, msg, checked, h)
	}
	return nil
}

// checkFragment fails a text message as soon as a fragment makes it invalid
// UTF-8; a sequence cut at the end of a fragment waits for the next one.
func (r *reader) checkFragment() *closeError {
	p := r.p
	if p.op != opText || p.compressed {
		return nil
	}
	n, ok := validPrefix(p.msg[p.checked:])
	if !ok {
		return &closeError{code: protocol.CloseInvalidPayload, reason: "invalid UTF-8 in a text message"}
	}
	p.checked += n
	return nil
}

// deliver inflates and checks a whole message (msg[:checked] is already known
// to be valid UTF-8) and hands it to h.
func (r *reader) deliver(op byte, compressed bool, msg []byte, checked int, h frameHandler) *closeError {
	if compressed {
		out, err := wire.Inflate(nil, msg, int(r.max))
		switch {
		case errors.Is(err, wire.ErrInflatedTooLarge):
			return &closeError{code: protocol.CloseTooBig, reason: fmt.Sprintf("message inflates to over %d bytes", r.max)}
		case err != nil:
			return &closeError{code: protocol.CloseInvalidPayload, reason: "invalid compressed data"}
		}
		msg, checked = out, 0
	}
	if op == opText && !utf8.Valid(msg[checked:]) {
		return &closeError{code: protocol.CloseInvalidPayload, reason: "invalid UTF-8 in a text message"}
	}
	h.message(op, msg, compressed)
	return nil
}

// skipFrame, once the reader has failed, skips the frame at the start of data
// (or the rest of one being skipped) and returns how many bytes it took; it
// looks only for the client's close frame, which it hands to h.
func (r *reader) skipFrame(data []byte, h frameHandler) int {
	if r.p != nil && r.p.skip > 0 {
		n := min(r.p.skip, len(data))
		r.p.skip -= n
		return n
	}
	fh, ok := parseHeader(data)
	if !ok {
		return 0
	}
	if fh.n > 1<<30 { // not a frame: nothing after it can be read
		r.part().skip = 1 << 62
		return fh.size
	}
	if r.p != nil && r.p.refused {
		r.p.refused = false
	} else if fh.op == opClose {
		h.peerClose(protocol.CloseNormal)
		r.part().skip = 1 << 62 // the connection is over
		return len(data)
	}
	r.part().skip = int(fh.n)
	return fh.size
}

// closeCode returns the status code of a close frame's payload, or the
// violation in it.
func closeCode(p []byte) (int, *closeError) {
	switch len(p) {
	case 0:
		return 1005, nil // no status code
	case 1:
		return 0, protocolError("close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, protocolError(fmt.Sprintf("invalid close code %d", code))
	}
	if !utf8.Valid(p[2:]) {
		return 0, &closeError{code: protocol.CloseInvalidPayload, reason: "close reason is not UTF-8"}
	}
	return code, nil
}

// validCloseCode reports whether a peer may send code in a close frame: the
// codes RFC 6455 and IANA define for use on the wire, and 3000-4999.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// validPrefix returns how many bytes at the start of b are whole, valid UTF-8,
// and false when b holds an invalid sequence (rather than one cut short at
// its end).
func validPrefix(b []byte) (int, bool) {
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i, !utf8.FullRune(b[i:])
		}
		i += size
	}
	return i, true
}

// unmask applies a client frame's masking key to its payload, in place.
func unmask(b, key []byte) {
	k := binary.LittleEndian.Uint32(key)
	k64 := uint64(k)<<32 | uint64(k)
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
		b = b[8:]
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
}
