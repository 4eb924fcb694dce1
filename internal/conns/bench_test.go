package conns

import (
	"testing"

	"github.com/tetherhq/tether/protocol"
)

type benchConn struct{ _ [64]byte }

func (*benchConn) Close(protocol.Disconnect) {}
func (*benchConn) Drop()                     {}

// BenchmarkAdmitAddRemove is one connection's whole registry cost: admitted,
// registered, removed.
func BenchmarkAdmitAddRemove(b *testing.B) {
	r := New(Config{MaxConns: 1 << 30})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := &benchConn{}
			if err := r.Admit(WebSocket); err != nil {
				b.Fatal(err)
			}
			_ = r.Add(WebSocket, c)
			r.Remove(c)
		}
	})
}
