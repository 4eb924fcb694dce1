package wire

import "sync"

// Message is one server message that is not a publication (a presence push),
// framed once per wire format and shared by every receiver. It is sent
// uncompressed on every format.
type Message struct {
	payload []byte
	frames  [formatCount]struct {
		once sync.Once
		buf  []byte
	}
}

// NewMessage returns a message of payload, one JSON object, which it keeps:
// the caller must not modify it after.
func NewMessage(payload []byte) *Message { return &Message{payload: payload} }

// Frame returns the message framed for w. The bytes are built once per
// format and shared: callers must not modify them.
func (m *Message) Frame(w Format) []byte {
	f := &m.frames[w]
	f.once.Do(func() { f.buf = w.AppendFrame(make([]byte, 0, len(m.payload)+10), m.payload) })
	return f.buf
}
