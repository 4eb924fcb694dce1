package serverapi

import (
	"bytes"
	"encoding/json"
)

// quickDecoder is a request that can decode its common shape without
// reflection. decodeQuick reports false, having changed nothing, for any
// body it does not handle; decode then uses encoding/json.
type quickDecoder interface {
	decodeQuick(body []byte) bool
}

// decodeQuick takes {"channel":"<printable ASCII>","data":<JSON value>}, in
// that order, with any whitespace JSON allows: what backends send. Anything
// else (escapes or other characters in the channel, other keys, another
// order) is left to encoding/json, so that both read every body the same way
// (FuzzPublishDecodeQuick).
func (req *publishRequest) decodeQuick(body []byte) bool {
	b := trimSpace(body)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return false
	}
	inner := b[1 : len(b)-1]
	rest, ok := cutKey(inner, `"channel"`)
	if !ok || len(rest) == 0 || rest[0] != '"' {
		return false
	}
	rest = rest[1:]
	end := 0
	for end < len(rest) && rest[end] != '"' {
		if c := rest[end]; c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
		end++
	}
	if end == len(rest) {
		return false
	}
	channel := rest[:end]
	rest = trimSpace(rest[end+1:])
	if len(rest) == 0 || rest[0] != ',' {
		return false
	}
	if rest, ok = cutKey(rest[1:], `"data"`); !ok {
		return false
	}
	data := trimSpace(rest)
	if len(data) == 0 || !json.Valid(data) { // a value, and all of the rest
		return false
	}
	req.Channel = string(channel)
	req.Data = append(json.RawMessage(nil), data...)
	return true
}

// cutKey returns what follows key and its colon in b, leading whitespace
// skipped, if b starts (after whitespace) with them.
func cutKey(b []byte, key string) ([]byte, bool) {
	b = trimSpace(b)
	if !bytes.HasPrefix(b, []byte(key)) {
		return nil, false
	}
	b = trimSpace(b[len(key):])
	if len(b) == 0 || b[0] != ':' {
		return nil, false
	}
	return trimSpace(b[1:]), true
}

// trimSpace trims JSON's whitespace from both ends of b.
func trimSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
