// Package web holds what the tether binary serves to browsers: the chat page
// at /, the live stats page at /stats, and the JavaScript client at /tether.js
// (with its TypeScript declarations at /tether.d.ts). They are plain HTML and
// ES modules, with no build step, embedded into the binary. The pages use
// tether.js like any application would; the stats page reads /api/stats.
//
// The JavaScript client is the npm package in web/js; its tests run in Node
// and in Chromium. The package must not depend on the server's internals.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static js/tether.js js/tether.d.ts
var files embed.FS

// Handler serves the embedded pages and the JavaScript client.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /tether.js", file("js/tether.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /tether.d.ts", file("js/tether.d.ts", "application/typescript; charset=utf-8"))
	mux.Handle("GET /stats", file("static/stats.html", "text/html; charset=utf-8"))
	mux.Handle("GET /", http.FileServerFS(static))
	return mux
}

// file serves one embedded file. Browsers revalidate it on every load
// (no-cache): a new binary's tether.js reaches pages at once.
func file(name, contentType string) http.Handler {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
