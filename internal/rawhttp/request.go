// Package rawhttp reads plain HTTP/1.1 requests straight from the bytes an
// event loop received, for the server API's hot path: a keep-alive request
// with a Content-Length body or none, whole in the bytes at hand.
//
// It declines everything else (a request split over reads, chunked bodies,
// Expect, upgrades, Connection: close, HTTP/1.0, a query string, obsolete
// line folding, anything malformed or unusual), and its caller hands those
// bytes to a full HTTP server. It must never answer a request itself, and
// never frame a request otherwise than net/http does: its caller may hand a
// request it read to another HTTP parser, and then go on reading after it.
package rawhttp

// Request is the part of a request the server API needs. Its slices point
// into the bytes Read was given.
type Request struct {
	Method []byte
	// Path is the request target: an absolute path with no query.
	Path []byte
	// Authorization holds the values of the Authorization fields, in order.
	Authorization [][]byte
	Body          []byte
}

// Limits of what Read accepts; past them it declines.
const (
	// MaxHeader is the largest request line and header section, in bytes.
	MaxHeader = 8 << 10
	// maxFields is the most header fields.
	maxFields = 64
	// maxAuthorization is the most Authorization fields.
	maxAuthorization = 4
	// maxContentLength is the most digits of Content-Length.
	maxContentLength = 15
)

// Read reads the request at the start of data into r, reusing r's slices,
// and returns its length in data: request line, header section and body.
// A request with no Content-Length has no body, as in net/http. It returns 0
// when it declines the request (see the package doc), when the request is
// not whole in data, and when its body is larger than maxBody.
func Read(data []byte, maxBody int64, r *Request) int {
	r.Method, r.Path, r.Body = nil, nil, nil
	r.Authorization = r.Authorization[:0]
	head := data[:min(len(data), MaxHeader)]
	i := requestLine(head, r)
	if i == 0 {
		return 0
	}
	var (
		contentLength       int64 = -1
		hosts, fields       int
		nameStart, valueEnd int
	)
	for {
		if i+1 < len(head) && head[i] == '\r' && head[i+1] == '\n' { // the empty line: end of the header section
			i += 2
			break
		}
		fields++
		if fields > maxFields {
			return 0
		}
		// name: one token or more, then ':' with no space before it.
		nameStart = i
		for i < len(head) && isToken(head[i]) {
			i++
		}
		if i == nameStart || i >= len(head) || head[i] != ':' {
			return 0
		}
		name := head[nameStart:i]
		i++
		for i < len(head) && (head[i] == ' ' || head[i] == '\t') {
			i++
		}
		valueStart := i
		valueEnd = i
		for ; i < len(head) && head[i] != '\r'; i++ {
			c := head[i]
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0
			}
			if c != ' ' && c != '\t' {
				valueEnd = i + 1
			}
		}
		if i+1 >= len(head) || head[i+1] != '\n' {
			return 0
		}
		value := head[valueStart:valueEnd]
		i += 2
		switch {
		case equalFold(name, "content-length"):
			if contentLength >= 0 {
				return 0
			}
			if contentLength = parseLength(value); contentLength < 0 {
				return 0
			}
		case equalFold(name, "host"):
			hosts++
		case equalFold(name, "authorization"):
			if len(r.Authorization) == maxAuthorization {
				return 0
			}
			r.Authorization = append(r.Authorization, value)
		case equalFold(name, "connection"):
			if !equalFold(value, "keep-alive") {
				return 0
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "expect"), equalFold(name, "upgrade"),
			equalFold(name, "te"), equalFold(name, "trailer"):
			return 0
		}
	}
	contentLength = max(contentLength, 0)
	if hosts != 1 || contentLength > maxBody || int64(len(data)-i) < contentLength {
		return 0
	}
	end := i + int(contentLength)
	r.Body = data[i:end:end]
	return end
}

// requestLine reads "METHOD /path HTTP/1.1\r\n" at the start of b into r and
// returns its length, or 0.
func requestLine(b []byte, r *Request) int {
	i := 0
	for i < len(b) && 'A' <= b[i] && b[i] <= 'Z' {
		i++
	}
	if i == 0 || i >= len(b) || b[i] != ' ' {
		return 0
	}
	r.Method = b[:i]
	i++
	start := i
	if i >= len(b) || b[i] != '/' {
		return 0
	}
	for i < len(b) && isPathByte(b[i]) {
		i++
	}
	r.Path = b[start:i]
	const proto = " HTTP/1.1\r\n"
	if len(b)-i < len(proto) || string(b[i:i+len(proto)]) != proto {
		return 0
	}
	return i + len(proto)
}

// isPathByte reports whether c may appear in a path Read accepts: letters,
// digits and "/-._~". Anything else (a query, an escape, a dot segment's
// neighbours) is for the full server.
func isPathByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '/' || c == '-' || c == '_' || c == '.' || c == '~'
}

// isToken reports whether c is a tchar of RFC 9110.
func isToken(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
		c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~'
}

// equalFold reports whether b is lower, a lower-case ASCII string, in any
// case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: decimal digits only. It returns
// -1 for anything else.
func parseLength(b []byte) int64 {
	if len(b) == 0 || len(b) > maxContentLength {
		return -1
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
