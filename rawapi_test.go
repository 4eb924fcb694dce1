package tether_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/tethertest"
)

// apiConn is a keep-alive HTTP/1.1 connection to a node, written to by hand.
type apiConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialAPI(t *testing.T, addr string) *apiConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &apiConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (a *apiConn) write(s string) {
	a.t.Helper()
	_ = a.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(a.c, s); err != nil {
		a.t.Fatal(err)
	}
}

// answer reads one response: "<status> <content type> <challenge>: <body>".
func (a *apiConn) answer() string {
	a.t.Helper()
	_ = a.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(a.r, nil)
	if err != nil {
		a.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		a.t.Fatalf("read body: %v", err)
	}
	if res.Header.Get("Date") == "" {
		a.t.Errorf("response %d has no Date", res.StatusCode)
	}
	return fmt.Sprintf("%d %s %q: %s", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
}

// post is a POST request to path with body; extra header lines end in \r\n.
func post(path, extra, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: tether\r\n%sContent-Length: %d\r\n\r\n%s", path, extra, len(body), body)
}

// postChunked is post with a chunked body, which the raw path leaves to nbhttp.
func postChunked(path, extra, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: tether\r\n%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", path, extra, len(body), body)
}

// TestRawAPIAnswersAsHTTP: each API request answered from the event loop's
// bytes gets the answer nbhttp gives the same request (sent chunked, which
// only nbhttp reads), on nodes with and without an API key.
func TestRawAPIAnswersAsHTTP(t *testing.T) {
	const key = "k3y"
	for _, tc := range []struct {
		name, key, path, auth, body string
		want                        string // the status and the start of the body
		notRaw                      bool   // left to nbhttp
	}{
		{"publish", "", "/api/publish", "", `{"channel":"a","data":{"x":1}}`, `200 application/json "": {"epoch":`, false},
		{"publish, with the key", key, "/api/publish", "Authorization: Bearer " + key + "\r\n", `{"channel":"a","data":1}`, `200`, false},
		{"no key", key, "/api/publish", "", `{"channel":"a","data":1}`, `401 application/json "Bearer realm=\"tether\"": {"error":{"code":"unauthorized"`, false},
		{"wrong key", key, "/api/publish", "Authorization: Bearer nope\r\n", `{"channel":"a","data":1}`, `401`, false},
		{"malformed", "", "/api/publish", "", `{"channel":`, `400 application/json "": {"error":{"code":"bad_request"`, false},
		{"no data", "", "/api/publish", "", `{"channel":"a"}`, `400`, false},
		{"bad channel", "", "/api/publish", "", `{"channel":"a b","data":1}`, `400 application/json "": {"error":{"code":"invalid_channel"`, false},
		{"history", "", "/api/history", "", `{"channel":"a"}`, `200`, false},
		{"batch", "", "/api/batch", "", `{"publications":[{"channel":"a","data":1},{"channel":"","data":2}]}`, `200`, false},
		{"presence stats", "", "/api/presence_stats", "", `{"channel":"a"}`, ``, false},
		{"body too large", "", "/api/publish", "", `{"channel":"a","data":"` + strings.Repeat("x", 2000) + `"}`, `413`, true},
		{"unknown endpoint", "", "/api/nope", "", `{}`, `405`, true}, // POST to what only GET / serves
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tethertest.Config()
			cfg.APIKey = tc.key
			cfg.MaxMessageSize = 1024
			n := tethertest.NewNode(t, cfg)
			raw, viaHTTP := dialAPI(t, n.Addr().String()), dialAPI(t, n.Addr().String())
			raw.write(post(tc.path, tc.auth, tc.body))
			got := raw.answer()
			rawServed := n.RawAPIRequests()
			viaHTTP.write(postChunked(tc.path, tc.auth, tc.body))
			want := viaHTTP.answer()
			// The raw path reads the endpoints' bodies within their limits,
			// and leaves what it cannot read to nbhttp.
			wantRaw := int64(1)
			if tc.notRaw {
				wantRaw = 0
			}
			if rawServed != wantRaw || n.RawAPIRequests() != rawServed {
				t.Fatalf("%d requests answered raw, then %d; want %d, then the same", rawServed, n.RawAPIRequests(), wantRaw)
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("raw answer %s, want %s...", got, tc.want)
			}
			if strings.Contains(got, `"epoch":`) { // positions differ: compare what is before
				got, want = got[:strings.Index(got, `"offset":`)], want[:strings.Index(want, `"offset":`)]
			}
			if got != want {
				t.Fatalf("raw answer\n%s\nnbhttp's\n%s", got, want)
			}
		})
	}
}

// TestRawAPIConnection: on one keep-alive connection, pipelined requests
// are answered in order whoever reads them; a whole request the raw path
// does not serve goes to nbhttp alone; a request split over two writes, and
// whatever follows a request the raw path cannot read, go to nbhttp, and the
// connection goes on.
func TestRawAPIConnection(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	pub := func(i int) string { return post("/api/publish", "", fmt.Sprintf(`{"channel":"c","data":%d}`, i)) }
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string // start of each answer
		raw    int64    // of them answered raw, at least
	}{
		{"pipelined", []string{pub(1) + pub(2) + pub(3)}, []string{`200`, `200`, `200`}, 3},
		{"then a GET", []string{pub(1) + "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n" + pub(2), pub(3)},
			[]string{`200 application/json`, `200 text/plain`, `200 application/json`, `200 application/json`}, 3},
		{"after a GET", []string{"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", pub(1), pub(2)},
			[]string{`200 text/plain`, `200 application/json`, `200 application/json`}, 2},
		{"after a chunked POST", []string{postChunked("/api/publish", "", `{"channel":"c","data":0}`), pub(1)},
			[]string{`200`, `200`}, 0},
		{"split body", []string{pub(1)[:len(pub(1))-3], pub(1)[len(pub(1))-3:] + pub(2)}, []string{`200`, `200`}, 0},
		{"split header", []string{pub(1)[:20], pub(1)[20:], pub(2)}, []string{`200`, `200`}, 0},
		{"connection close", []string{pub(1) + post("/api/publish", "Connection: close\r\n", `{"channel":"c","data":0}`)},
			[]string{`200`, `200`}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := dialAPI(t, n.Addr().String())
			before := n.RawAPIRequests()
			var got []string
			for _, w := range tc.writes {
				a.write(w)
			}
			for range tc.want {
				got = append(got, a.answer())
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Fatalf("answers %q, want %q", got, tc.want)
				}
			}
			// A write can arrive in pieces, and pieces can arrive together:
			// the raw path answers at least what came whole first.
			if raw := n.RawAPIRequests() - before; raw < tc.raw || raw > int64(len(tc.want)) {
				t.Fatalf("%d answered raw, want %d to %d", raw, tc.raw, len(tc.want))
			}
		})
	}
}
