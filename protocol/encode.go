package protocol

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/tetherhq/tether/internal/jsontext"
)

// appendPublication appends to dst the JSON of p, byte for byte what
// json.Marshal gives for p's fields by their tags (not calling MarshalJSON),
// without reflection. Its data and info are copied as they are when
// json.Marshal would copy them unchanged (verbatim), and encoded by
// encoding/json otherwise; their error, for a value that is not JSON, is
// json.Marshal's. On error, what it appended to dst is partial.
func appendPublication(dst []byte, p *Publication) ([]byte, error) {
	n := 64 + len(p.Op) + len(p.Channel) + len(p.Epoch) + len(p.Data)
	if p.From != nil {
		n += 32 + len(p.From.Client) + len(p.From.User) + len(p.From.Info)
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '{')
	dst = appendStringField(dst, `"op":`, p.Op)
	dst = appendStringField(dst, `"channel":`, p.Channel)
	dst = appendStringField(dst, `"epoch":`, p.Epoch)
	dst = append(dst, `"offset":`...)
	dst = strconv.AppendUint(dst, p.Offset, 10)
	dst = append(dst, `,"data":`...)
	dst, err := appendRaw(dst, p.Data)
	if err != nil {
		return dst, err
	}
	if f := p.From; f != nil {
		dst = append(dst, `,"from":{`...)
		dst = appendStringField(dst, `"client":`, f.Client)
		dst = appendStringField(dst, `"user":`, f.User)
		if len(f.Info) > 0 {
			dst = append(dst, `"info":`...)
			if dst, err = appendRaw(dst, f.Info); err != nil {
				return dst, err
			}
			dst = append(dst, ',')
		}
		dst = endObject(dst)
	}
	return append(dst, '}'), nil
}

// appendStringField appends key (with its quotes and colon), the JSON string
// value and a comma to dst, or nothing when value is empty (omitempty).
func appendStringField(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, key...)
	dst = jsontext.AppendString(dst, value)
	return append(dst, ',')
}

// endObject closes the object dst ends in: its last field's comma becomes
// the closing brace, or, with no field, the brace follows the opening one.
func endObject(dst []byte) []byte {
	if dst[len(dst)-1] == ',' {
		dst[len(dst)-1] = '}'
		return dst
	}
	return append(dst, '}')
}

// appendRaw appends v as json.Marshal encodes a json.RawMessage: null when
// nil, else v compacted, with <, >, &, U+2028 and U+2029 escaped. A verbatim
// v is copied; any other goes through encoding/json, which also reports a v
// that is not JSON.
func appendRaw(dst []byte, v json.RawMessage) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	if verbatim(v) && json.Valid(v) {
		return append(dst, v...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// inString marks the bytes verbatim must look at inside a JSON string.
var inString = [256]bool{'"': true, '\\': true, '<': true, '>': true, '&': true, 0xE2: true}

// verbatim reports whether json.Marshal would copy v, if it is JSON,
// unchanged: v has no whitespace outside strings and no <, >, &, U+2028 or
// U+2029 (which it escapes). It does not check that v is JSON: the scan
// follows strings (quotes and backslashes) and nothing else.
func verbatim(v []byte) bool {
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case ' ', '\t', '\n', '\r':
			return false
		case '"':
			for i++; i < len(v); i++ {
				c := v[i]
				if !inString[c] {
					continue
				}
				if c == '"' {
					break
				}
				if c == '\\' {
					i++ // the escaped byte, whatever it is
					continue
				}
				if c != 0xE2 || i+2 < len(v) && v[i+1] == 0x80 && v[i+2]&^1 == 0xA8 {
					return false // <, >, &, U+2028, U+2029
				}
			}
		}
	}
	return true
}

// EncodeReply returns the JSON of a reply: json.Marshal's bytes. The
// replies to publish and subscribe, one per command, are written by hand
// (AppendPublishReply, AppendSubscribeReply); any other goes through
// encoding/json.
func EncodeReply(r *Reply) ([]byte, error) {
	if r.Error == nil {
		switch res := r.Result.(type) {
		case *PublishResult:
			if res != nil {
				return AppendPublishReply(nil, r.ID, res), nil
			}
		case *SubscribeResult:
			if res != nil {
				return AppendSubscribeReply(nil, r.ID, res)
			}
		}
	}
	return json.Marshal(r)
}

// AppendPublishReply appends to dst the JSON of a reply with id whose
// result is pos: the bytes json.Marshal(&Reply{ID: id, Result: pos}) gives.
func AppendPublishReply(dst []byte, id uint64, pos *PublishResult) []byte {
	dst = slices.Grow(dst, 64+len(pos.Epoch))
	dst = appendResultPosition(dst, id, pos.Epoch, pos.Offset)
	return append(dst, "}}"...)
}

// appendResultPosition appends the start of a reply with id whose result
// begins with a position: {"id":id,"result":{"epoch":epoch,"offset":offset
// (no id when it is 0), as json.Marshal writes it.
func appendResultPosition(dst []byte, id uint64, epoch string, offset uint64) []byte {
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, id, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"result":{"epoch":`...)
	dst = jsontext.AppendString(dst, epoch)
	dst = append(dst, `,"offset":`...)
	return strconv.AppendUint(dst, offset, 10)
}

// AppendSubscribeReply appends to dst the JSON of a reply with id whose
// result is r: the bytes json.Marshal(&Reply{ID: id, Result: r}) gives,
// without its second pass over them. The publications are copied as
// encoded (Encode): they were checked when published, and a recovery
// reply carries up to a whole history of them.
func AppendSubscribeReply(dst []byte, id uint64, r *SubscribeResult) ([]byte, error) {
	n := 128 + len(r.Epoch)
	for _, p := range r.Publications {
		if p != nil {
			n += len(p.raw) + 1
		}
	}
	dst = slices.Grow(dst, n)
	dst = appendResultPosition(dst, id, r.Epoch, r.Offset)
	dst = append(dst, `,"recoverable":`...)
	dst = strconv.AppendBool(dst, r.Recoverable)
	if r.Recovering || r.Recovered {
		dst = append(dst, `,"recovered":`...)
		dst = strconv.AppendBool(dst, r.Recovered)
	}
	if len(r.Publications) > 0 {
		dst = append(dst, `,"publications":[`...)
		for i, p := range r.Publications {
			if i > 0 {
				dst = append(dst, ',')
			}
			if p == nil {
				dst = append(dst, "null"...)
				continue
			}
			b, err := p.MarshalJSON()
			if err != nil {
				return dst, err
			}
			dst = append(dst, b...)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}}"...), nil
}
