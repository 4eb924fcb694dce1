// Package jsonscan reads the plain parts of JSON text by index, for the fast
// paths that decode a common message shape without encoding/json.
//
// It recognises only what it can read exactly (whitespace, strings without
// escapes); a caller that gets false must fall back to encoding/json. It does
// not validate a whole document and must not grow into a JSON parser.
package jsonscan

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
