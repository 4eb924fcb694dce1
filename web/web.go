// Package web holds the pages the tether binary serves: the chat page at /.
// They are plain HTML and JavaScript using a bare `new WebSocket()`, embedded
// into the binary. The package must not depend on the server's internals.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded pages.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}
