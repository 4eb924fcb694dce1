package serverapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// nopBackend publishes nowhere: what is left of a publish is the API's own
// cost.
type nopBackend struct{ fakeBackend }

func (*nopBackend) Publish(context.Context, string, json.RawMessage) (protocol.Position, error) {
	return protocol.Position{Epoch: "k3v7q2xw9a", Offset: 46}, nil
}

// BenchmarkHTTPPublish is the API's cost of one POST /api/publish: access
// check, body read and decode, response encode.
func BenchmarkHTTPPublish(b *testing.B) {
	mux := http.NewServeMux()
	New(Config{Backend: &nopBackend{}, APIKey: "k", MaxBodySize: 64 << 10}).Routes(mux)
	body := `{"channel":"bench:c17","data":{"seq":17,"ts":1764620000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxx"}}`
	req := httptest.NewRequest("POST", "/api/publish", nil)
	req.Header.Set("Authorization", "Bearer k")
	rd := strings.NewReader(body)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		w.code = 0
		mux.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatal(w.code)
		}
	}
}

// discardWriter is a ResponseWriter that keeps the status only.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
