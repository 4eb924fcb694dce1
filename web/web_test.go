package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler()
	js, err := os.ReadFile("js/tether.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>tether chat</title>"},
		{"/stats", "text/html; charset=utf-8", "<title>tether stats</title>"},
		{"/tether.js", "text/javascript; charset=utf-8", string(js)},
		{"/tether.d.ts", "application/typescript; charset=utf-8", "export class Client"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != tc.contentType || !strings.Contains(string(body), tc.contains) {
				t.Fatalf("GET %s: %d %q, %d bytes", tc.path, rec.Code, rec.Header().Get("Content-Type"), len(body))
			}
		})
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/package.json", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /package.json: %d, want 404: only the client is served from web/js", rec.Code)
	}
}
