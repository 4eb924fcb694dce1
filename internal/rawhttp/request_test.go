package rawhttp

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

const publish = "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Go-http-client/1.1\r\n" +
	"Content-Length: 30\r\nAuthorization: Bearer k1\r\nContent-Type: application/json\r\n" +
	"Accept-Encoding: gzip\r\n\r\n{\"channel\":\"a\",\"data\":{\"x\":1}}"

func TestRead(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int // the length read; 0 declined, -1 all of it
	}{
		{"publish", publish, len(publish)},
		{"pipelined: the first", publish + publish, len(publish)},
		{"no body", "POST /api/info HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", -1},
		{"keep-alive", "POST /a HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\ncontent-length: 2\r\n\r\n{}", -1},
		{"spaces around a value", "POST /a HTTP/1.1\r\nHost:  h \t\r\nContent-Length:\t2 \r\n\r\n{}", -1},
		{"body not whole", publish[:len(publish)-1], 0},
		{"header not whole", publish[:40], 0},
		{"no content-length", "POST /a HTTP/1.1\r\nHost: h\r\n\r\n", -1},
		{"GET", "GET /metrics HTTP/1.1\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\nPOST", 57},
		{"two content-lengths", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"signed content-length", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +2\r\n\r\n{}", 0},
		{"chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"expect", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"connection close", "POST /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", 0},
		{"no host", "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"two hosts", "POST /a HTTP/1.1\r\nHost: h\r\nHost: i\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"HTTP/1.0", "POST /a HTTP/1.0\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"query", "POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"escape", "POST /%61 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"absolute form", "POST http://h/a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"bare LF", "POST /a HTTP/1.1\nHost: h\nContent-Length: 2\n\n{}", 0},
		{"bare LF in a field", "POST /a HTTP/1.1\r\nHost: h\nX: y\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"obs-fold", "POST /a HTTP/1.1\r\nHost: h\r\nX: y\r\n z\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"space before colon", "POST /a HTTP/1.1\r\nHost : h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"control byte", "POST /a HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"lower-case method", "post /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}", 0},
		{"body too large", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n" + strings.Repeat("x", 2000), 0},
		{"header too large", "POST /a HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("x", MaxHeader) + "\r\nContent-Length: 2\r\n\r\n{}", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want < 0 {
				tt.want = len(tt.in)
			}
			var r Request
			if got := Read([]byte(tt.in), 1024, &r); got != tt.want {
				t.Fatalf("Read = %d, want %d", got, tt.want)
			}
			if tt.want > 0 {
				checkLikeNetHTTP(t, []byte(tt.in), tt.want, &r)
			}
		})
	}
}

func TestReadFields(t *testing.T) {
	var r Request
	in := []byte(publish)
	if n := Read(in, 1024, &r); n != len(in) {
		t.Fatalf("Read = %d", n)
	}
	if string(r.Method) != "POST" || string(r.Path) != "/api/publish" || string(r.Body) != `{"channel":"a","data":{"x":1}}` ||
		len(r.Authorization) != 1 || string(r.Authorization[0]) != "Bearer k1" {
		t.Fatalf("read %q %q %q %q", r.Method, r.Path, r.Body, r.Authorization)
	}
	if allocs := testing.AllocsPerRun(100, func() { Read(in, 1024, &r) }); allocs != 0 {
		t.Fatalf("%v allocations per Read, want 0", allocs)
	}
}

// checkLikeNetHTTP fails t unless net/http reads data[:n] as the same
// request that Read read into r, and finds it whole and kept alive.
func checkLikeNetHTTP(t *testing.T, data []byte, n int, r *Request) {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
	if err != nil {
		t.Fatalf("Read took %q, which net/http refuses: %v", data[:n], err)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("net/http body of %q: %v", data[:n], err)
	}
	auth := req.Header.Values("Authorization")
	same := req.Method == string(r.Method) && req.RequestURI == string(r.Path) && req.URL.Path == string(r.Path) &&
		string(body) == string(r.Body) && req.ContentLength == int64(len(r.Body)) && !req.Close &&
		len(req.TransferEncoding) == 0 && len(auth) == len(r.Authorization)
	for i := 0; same && i < len(auth); i++ {
		same = auth[i] == string(r.Authorization[i])
	}
	if !same {
		t.Fatalf("%q: Read %q %q body %q auth %q; net/http %q %q body %q auth %q close %v",
			data[:n], r.Method, r.Path, r.Body, r.Authorization, req.Method, req.RequestURI, body, auth, req.Close)
	}
}

// FuzzRead: whatever Read accepts, net/http reads as the same request, and
// more bytes after it change nothing.
func FuzzRead(f *testing.F) {
	f.Add([]byte(publish))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: h\r\nAuthorization: a\r\nauthorization: b\r\nContent-Length: 0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		n := Read(data, 1<<20, &r)
		if n == 0 {
			return
		}
		if n > len(data) {
			t.Fatalf("Read = %d past the %d bytes", n, len(data))
		}
		checkLikeNetHTTP(t, data, n, &r)
		var r2 Request
		if n2 := Read(append(data[:n:n], "GET / HTTP/1.1\r\n"...), 1<<20, &r2); n2 != n {
			t.Fatalf("Read = %d with more bytes after, %d without", n2, n)
		}
	})
}
