package tether

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"

	"github.com/tetherhq/tether/internal/rawhttp"
	"github.com/tetherhq/tether/internal/serverapi"
	"github.com/tetherhq/tether/internal/wsconn"
)

// rawAPI serves the server API's POST endpoints straight from the bytes the
// event loop read, skipping nbhttp's request and response objects, routing
// and header maps: a backend that publishes over keep-alive connections pays
// for little more than the publish. Only plaintext connections, and only
// with the memory backends, whose requests run on the event loop anyway
// (httpExecutor). Everything rawhttp declines goes to nbhttp, as does every
// later byte of that connection: nbhttp may hold part of a request.
type rawAPI struct {
	api       *serverapi.API
	keepalive time.Duration // the read deadline after each answer, as nbhttp sets it
	// toHTTP holds the connections nbhttp has had bytes of (*nbio.Conn).
	// An entry leaves when its connection closes or upgrades.
	toHTTP sync.Map
	served atomic.Int64 // requests answered here, for the tests
}

// rawScratch is what serving one read takes, pooled.
type rawScratch struct {
	req        rawhttp.Request
	body, resp []byte // an answer's body; the whole response
}

var rawScratches = sync.Pool{New: func() any { return new(rawScratch) }}

// put gives s back to rawScratches, unless a large answer grew it.
func (s *rawScratch) put() {
	if cap(s.body)+cap(s.resp) <= 128<<10 {
		rawScratches.Put(s)
	}
}

// onData is the engine's data handler with rawAPI in front of wsconn's.
func (ra *rawAPI) onData(nc *nbio.Conn, data []byte) {
	if p, ok := nc.Session().(*nbhttp.Parser); ok {
		if hc, ok := p.Conn.(*nbhttp.Conn); ok && hc.Conn == net.Conn(nc) { // plaintext
			if data = ra.serve(nc, p, data); len(data) == 0 {
				return
			}
		}
	}
	wsconn.OnData(nc, data)
}

// serve answers the requests at the start of data, and returns the bytes
// left for nbhttp. It answers those the API serves raw itself and hands
// each other whole request that rawhttp reads to nbhttp alone, which then
// holds nothing of the connection: a GET /metrics on a keep-alive
// connection does not cost its publishes the raw path.
func (ra *rawAPI) serve(nc *nbio.Conn, parser *nbhttp.Parser, data []byte) []byte {
	if _, ok := ra.toHTTP.Load(nc); ok {
		return data
	}
	s := rawScratches.Get().(*rawScratch)
	defer s.put()
	isLocal := local(nc)
	served := false
	for len(data) > 0 {
		n := rawhttp.Read(data, 1<<62, &s.req)
		if n == 0 {
			break
		}
		req := data[:n]
		data = data[n:]
		route, ok := ra.route(&s.req)
		if !ok {
			if err := parser.Parse(req); err != nil {
				_ = nc.CloseWithError(err)
				return nil
			}
			if nc.Session() != parser { // not from rawhttp's requests, but the connection is no longer HTTP
				return data
			}
			continue
		}
		ans := route.Serve(context.Background(), s.req.Authorization, isLocal, s.req.Body, s.body[:0])
		s.body = ans.Body[:0]
		s.resp = appendResponse(s.resp[:0], ans)
		ra.served.Add(1) // before the answer leaves, for the tests
		// nbio keeps what it cannot write at once; on an error it closes
		// the connection.
		if _, err := nc.Write(s.resp); err != nil {
			return nil
		}
		served = true
	}
	if served {
		_ = nc.SetReadDeadline(time.Now().Add(ra.keepalive))
	}
	if len(data) > 0 {
		ra.toHTTP.Store(nc, struct{}{})
	}
	return data
}

// route returns the endpoint that serves r raw: a POST to one of the API's
// endpoints, with a body within the endpoint's limit. Others are nbhttp's,
// which answers them as the routes do (405, 413).
func (ra *rawAPI) route(r *rawhttp.Request) (serverapi.RawRoute, bool) {
	if string(r.Method) != http.MethodPost {
		return serverapi.RawRoute{}, false
	}
	route, ok := ra.api.RawRoute(r.Path)
	return route, ok && int64(len(r.Body)) <= route.Limit()
}

// forget drops c from toHTTP: it closed or upgraded.
func (ra *rawAPI) forget(c net.Conn) {
	if nc, ok := c.(*nbio.Conn); ok {
		ra.toHTTP.Delete(nc)
	}
}

// local reports whether nc's peer is on a loopback address.
func local(nc *nbio.Conn) bool {
	a, ok := nc.RemoteAddr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// appendResponse appends the HTTP/1.1 response of ans to b, as nbhttp would
// write it for the API's handler.
func appendResponse(b []byte, ans serverapi.RawAnswer) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(ans.Status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(ans.Status)...)
	b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(ans.Body)), 10)
	b = append(b, "\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	if ans.Challenge {
		b = append(b, "\r\nWWW-Authenticate: Bearer realm=\"tether\""...)
	}
	b = append(b, "\r\n\r\n"...)
	return append(b, ans.Body...)
}
