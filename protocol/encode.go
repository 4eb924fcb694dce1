package protocol

import (
	"slices"
	"strconv"

	"github.com/tetherhq/tether/internal/jsontext"
)

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
	dst = append(dst, '{')
	if id != 0 {
		dst = append(dst, `"id":`...)
		dst = strconv.AppendUint(dst, id, 10)
		dst = append(dst, ',')
	}
	dst = append(dst, `"result":{"epoch":`...)
	dst = jsontext.AppendString(dst, r.Epoch)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, r.Offset, 10)
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
