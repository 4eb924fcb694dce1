package presence

import (
	"context"
	"errors"
	"strconv"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/internal/jsontext"
)

// ErrTooLarge is returned by AppendMembers when the channel's members do not
// fit the size asked for.
var ErrTooLarge = errors.New("presence: too many members for one reply")

// AppendMembers appends to dst the JSON of channel's presence result,
// {"members":[...]} as protocol.PresenceResult encodes it, straight from the
// store's members and without reflection: a channel's members can be many.
// When the result would pass max bytes (0: no limit) it returns dst as it
// was, the number of members and an error wrapping ErrTooLarge. Each Info is
// copied as it is: a member's Info must be valid JSON when it joins.
func (p *Presence) AppendMembers(ctx context.Context, dst []byte, channel string, max int) ([]byte, int, error) {
	ms, err := p.cfg.Store.Members(ctx, channel)
	if err != nil {
		return dst, 0, err
	}
	size := len(`{"members":[]}`)
	for i := range ms {
		size += memberJSONSize(&ms[i])
	}
	if max > 0 && size > max {
		return dst, len(ms), ErrTooLarge
	}
	if cap(dst)-len(dst) < size {
		dst = append(make([]byte, 0, len(dst)+size), dst...)
	}
	start := len(dst)
	dst = append(dst, `{"members":[`...)
	for i := range ms {
		m := &ms[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"client":`...)
		dst = jsontext.AppendString(dst, m.Client)
		if m.User != "" {
			dst = append(dst, `,"user":`...)
			dst = jsontext.AppendString(dst, m.User)
		}
		if len(m.Info) > 0 {
			dst = append(dst, `,"info":`...)
			dst = append(dst, m.Info...)
		}
		dst = append(dst, `,"connected_at":`...)
		dst = strconv.AppendInt(dst, unixMilli(m), 10)
		dst = append(dst, '}')
	}
	dst = append(dst, "]}"...)
	if max > 0 && len(dst)-start > max { // escapes made it longer than counted
		return dst[:start], len(ms), ErrTooLarge
	}
	return dst, len(ms), nil
}

// memberJSONSize is the size of m's JSON in a presence result, escapes
// aside, with its comma.
func memberJSONSize(m *backend.Member) int {
	n := len(`{"client":"","connected_at":1764620000000},`) + len(m.Client)
	if m.User != "" {
		n += len(`,"user":""`) + len(m.User)
	}
	if len(m.Info) > 0 {
		n += len(`,"info":`) + len(m.Info)
	}
	return n
}

func unixMilli(m *backend.Member) int64 {
	if m.ConnectedAt.IsZero() {
		return 0
	}
	return m.ConnectedAt.UnixMilli()
}
