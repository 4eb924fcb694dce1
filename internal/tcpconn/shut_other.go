//go:build !unix

package tcpconn

import "github.com/lesismal/nbio"

// shutdownWrite is not available here: the connection is closed after
// CloseTimeout instead.
func shutdownWrite(*nbio.Conn) error { return nil }
