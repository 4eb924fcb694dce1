package tether

import (
	"errors"
	"net"
	"sync"
	"time"
)

// listener lets the node stop accepting before the event loop stops. nbio's
// accept loop retries at once on any error until the engine is stopped, so once
// the socket is closed by stopAccepting, Accept parks until Close (called by the
// engine as it stops) releases it.
type listener struct {
	net.Listener
	release chan struct{}
	stop    sync.Once
	close   sync.Once
}

func newListener(ln net.Listener) *listener {
	return &listener{Listener: ln, release: make(chan struct{})}
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			<-l.release
			return nil, err
		}
		// Out of file descriptors, say: back off rather than spin.
		select {
		case <-time.After(50 * time.Millisecond):
		case <-l.release:
		}
	}
	return c, err
}

// stopAccepting closes the socket: no new connections.
func (l *listener) stopAccepting() {
	l.stop.Do(func() { _ = l.Listener.Close() })
}

// Close closes the socket and releases a parked Accept.
func (l *listener) Close() error {
	l.stopAccepting()
	l.close.Do(func() { close(l.release) })
	return nil
}
