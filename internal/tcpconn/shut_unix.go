//go:build unix

package tcpconn

import (
	"fmt"
	"syscall"

	"github.com/lesismal/nbio"
)

// shutdownWrite shuts c down for writing.
func shutdownWrite(c *nbio.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("tcpconn: shutdown: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_WR) }); err != nil {
		return fmt.Errorf("tcpconn: shutdown: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("tcpconn: shutdown: %w", serr)
	}
	return nil
}
