//go:build !race

package tether

import "github.com/lesismal/nbio/nbhttp"

// fenceAccepts is a no-op outside -race builds; see race.go.
func fenceAccepts(*nbhttp.Engine) {}
