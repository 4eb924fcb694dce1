// Package jsontext reads and writes the plain parts of JSON text by hand, for
// the fast paths that decode a common message shape or encode a reply without
// encoding/json.
//
// It reads only what it can read exactly (whitespace, strings without
// escapes): a caller that gets false must fall back to encoding/json. What it
// writes is byte for byte what encoding/json writes. It does not validate a
// whole document and must not grow into a JSON parser.
package jsontext

import (
	"encoding/json"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i in data that is
// not JSON whitespace, or len(data).
func SkipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String reads the JSON string starting at data[i] when it holds no escape
// and no control character, and returns its bytes (between the quotes) and
// the index after its closing quote. It reports false for anything else.
// The bytes are what encoding/json decodes only where data is valid UTF-8:
// a caller checks that, or accepts only ASCII.
func String(data []byte, i int) ([]byte, int, bool) {
	if i >= len(data) || data[i] != '"' {
		return nil, i, false
	}
	for j := i + 1; j < len(data); j++ {
		switch c := data[j]; {
		case c == '"':
			return data[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, j, false
		}
	}
	return nil, len(data), false
}

// AppendString appends s as a JSON string, escaped as encoding/json escapes
// it (HTML characters included). A string with nothing to escape, ASCII or
// not, is copied; any other is left to encoding/json.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return appendMarshaled(dst, s)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return appendMarshaled(dst, s) // invalid UTF-8 becomes \ufffd; U+2028 and U+2029 are escaped
		}
		i += size
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendMarshaled appends s as json.Marshal encodes it.
func appendMarshaled(dst []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(dst, q...)
}
