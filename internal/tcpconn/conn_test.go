package tcpconn

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// recorder is a conn's out: it keeps each write, in the order writes end,
// and holds the first write of hold until release is closed.
type recorder struct {
	hold     []byte
	entered  chan struct{} // gets a value when the held write begins
	release  chan struct{}
	mu       sync.Mutex
	writes   [][]byte
	heldOnce sync.Once
}

func (r *recorder) Write(b []byte) (int, error) {
	if bytes.Equal(b, r.hold) {
		r.heldOnce.Do(func() {
			r.entered <- struct{}{}
			<-r.release
		})
	}
	r.mu.Lock()
	r.writes = append(r.writes, slices.Clone(b))
	r.mu.Unlock()
	return len(b), nil
}

// TestPingOrderedBeforeFinalLine: the heartbeat's ping goes through the lock
// that orders writes, so that the final disconnect line, written while a
// ping is on its way, comes after it, and no ping comes after the final line.
func TestPingOrderedBeforeFinalLine(t *testing.T) {
	w := &recorder{hold: pingLine, entered: make(chan struct{}, 1), release: make(chan struct{})}
	c := &conn{srv: &Server{cfg: Config{MaxOutbound: 1 << 20}}, out: w}

	pinged := make(chan struct{})
	go func() { c.Ping(); close(pinged) }()
	<-w.entered // the ping is being written
	if c.wmu.TryLock() {
		c.wmu.Unlock()
		t.Error("a ping is written without the write lock: a final line written meanwhile goes first")
	}
	final := make(chan bool, 1)
	go func() {
		ok, _ := c.writeFinal(protocol.DisconnectShutdown)
		final <- ok
	}()
	close(w.release)
	<-pinged
	if !<-final {
		t.Fatal("writeFinal: the connection was closing already")
	}
	c.Ping() // after the final line: must not be written

	want := [][]byte{pingLine, appendDisconnect(nil, protocol.DisconnectShutdown)}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !slices.EqualFunc(w.writes, want, bytes.Equal) {
		t.Fatalf("written %q, want %q", w.writes, want)
	}
}
