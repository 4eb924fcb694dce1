package serverapi

import (
	"bytes"
	"encoding/json"

	"github.com/tetherhq/tether/internal/jsontext"
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
	b := bytes.TrimRight(body, " \t\n\r")
	i := jsontext.SkipSpace(b, 0)
	if len(b) < i+2 || b[i] != '{' || b[len(b)-1] != '}' {
		return false
	}
	inner := b[i+1 : len(b)-1]
	i, ok := afterKey(inner, 0, "channel")
	if !ok {
		return false
	}
	channel, i, ok := jsontext.String(inner, i)
	if !ok {
		return false
	}
	for _, c := range channel {
		if c > 0x7e { // printable ASCII only: the body's UTF-8 is not checked here
			return false
		}
	}
	if i = jsontext.SkipSpace(inner, i); i >= len(inner) || inner[i] != ',' {
		return false
	}
	if i, ok = afterKey(inner, i+1, "data"); !ok {
		return false
	}
	data := bytes.TrimRight(inner[i:], " \t\n\r")
	if len(data) == 0 || !json.Valid(data) { // a value, and all of the rest
		return false
	}
	req.Channel = string(channel)
	req.Data = append(json.RawMessage(nil), data...)
	return true
}

// afterKey returns the index of what follows the string key and its colon in
// data, whitespace skipped, if data[i:] starts (after whitespace) with them.
func afterKey(data []byte, i int, key string) (int, bool) {
	k, i, ok := jsontext.String(data, jsontext.SkipSpace(data, i))
	if !ok || string(k) != key {
		return 0, false
	}
	if i = jsontext.SkipSpace(data, i); i >= len(data) || data[i] != ':' {
		return 0, false
	}
	return jsontext.SkipSpace(data, i+1), true
}
