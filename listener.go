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
//
// It also fences a race of nbhttp's accept goroutine: it hands a new
// connection to the poller and only then sets the connection's handshake read
// deadline, so when the poller has already run the upgrade, which cleared that
// deadline, the deadline comes back and cuts the WebSocket connection
// HandshakeTimeout after it opened. The accept goroutine is past that point
// for every connection it took once it calls Accept again: an upgrade that
// finds it busy (upgraded) leaves its connection to be cleared then.
type listener struct {
	net.Listener
	release chan struct{}
	stop    sync.Once
	close   sync.Once

	mu      sync.Mutex
	busy    int        // accept goroutines between an Accept's return and their next call
	pending []net.Conn // upgraded while busy: their read deadline is cleared again when busy is 0
}

func newListener(ln net.Listener) *listener {
	return &listener{Listener: ln, release: make(chan struct{})}
}

func (l *listener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.busy = max(l.busy-1, 0)
	var pending []net.Conn
	if l.busy == 0 {
		pending, l.pending = l.pending, nil
	}
	l.mu.Unlock()
	for _, c := range pending {
		_ = c.SetReadDeadline(time.Time{})
	}
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.busy++
		l.mu.Unlock()
	}
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

// upgraded takes a connection whose upgrade is about to clear its read
// deadline: while an accept goroutine may yet set it, the connection waits
// for the next Accept to clear it again. (Checked before the clear: busy at 0
// means the goroutine has set the deadlines of all it took, c's included, so
// the clear that follows comes after.)
func (l *listener) upgraded(c net.Conn) {
	l.mu.Lock()
	if l.busy > 0 {
		l.pending = append(l.pending, c)
	}
	l.mu.Unlock()
}
