package nats

import "strings"

// token escapes a channel name into one NATS subject token: ASCII letters,
// digits, '-', '_' and ':' stay as they are, every other byte becomes '%'
// and two upper-case hex digits. The result never holds '.', a space, '*' or
// '>', so it is one literal token whatever the channel name, and two names
// never share a token ('%' itself is escaped).
func token(channel string) string {
	if channel == "" {
		return "%" // never the escape of a name: '%' is always followed by two digits
	}
	plain := true
	for i := 0; i < len(channel); i++ {
		if !keep(channel[i]) {
			plain = false
			break
		}
	}
	if plain {
		return channel
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(channel) * 2)
	for i := 0; i < len(channel); i++ {
		c := channel[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func keep(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == ':'
}
