package protocol

import (
	"strconv"

	"github.com/tetherhq/tether/internal/jsontext"
)

// decodeFlat decodes the common shape of a command into c without
// encoding/json: one flat object whose keys are id, op, channel, token or
// limit, spelled so, with strings free of escapes and non-negative
// integers. It reports false for anything else, c then partly filled, and
// the caller decodes with encoding/json; when it reports true, c holds
// what json.Unmarshal would have given. data must be valid UTF-8.
func decodeFlat(data []byte, c *Command) bool {
	i := jsontext.SkipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = jsontext.SkipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return jsontext.SkipSpace(data, i+1) == len(data)
	}
	for {
		key, j, ok := jsontext.String(data, i)
		if !ok {
			return false
		}
		i = jsontext.SkipSpace(data, j)
		if i >= len(data) || data[i] != ':' {
			return false
		}
		i = jsontext.SkipSpace(data, i+1)
		switch string(key) {
		case "op", "channel", "token":
			s, j, ok := jsontext.String(data, i)
			if !ok {
				return false
			}
			switch string(key) {
			case "op":
				c.Op = internOp(s)
			case "channel":
				c.Channel = string(s)
			default:
				c.Token = string(s)
			}
			i = j
		case "id", "limit":
			j := i
			for j < len(data) && data[j] >= '0' && data[j] <= '9' {
				j++
			}
			if j == i || (data[i] == '0' && j > i+1) {
				return false
			}
			if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E') {
				return false
			}
			if string(key) == "id" {
				n, err := strconv.ParseUint(string(data[i:j]), 10, 64)
				if err != nil {
					return false
				}
				c.ID = n
			} else {
				n, err := strconv.ParseInt(string(data[i:j]), 10, 0)
				if err != nil {
					return false
				}
				c.Limit = int(n)
			}
			i = j
		default:
			return false
		}
		i = jsontext.SkipSpace(data, i)
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case ',':
			i = jsontext.SkipSpace(data, i+1)
		case '}':
			return jsontext.SkipSpace(data, i+1) == len(data)
		default:
			return false
		}
	}
}

// internOp returns the constant equal to op, so that the op of a command
// holds no bytes of its own.
func internOp(op []byte) string {
	for _, k := range [...]string{OpConnect, OpSubscribe, OpUnsubscribe, OpPublish, OpHistory, OpPing, OpPong, OpRefresh, OpPresence, OpPresenceStats} {
		if string(op) == k {
			return k
		}
	}
	return string(op)
}
