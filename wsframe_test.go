package tether_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestWebSocketMalformedFrame checks that a frame the parser refuses gets a
// close frame with 1002, not a dropped connection.
func TestWebSocketMalformedFrame(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	tests := []struct {
		name  string
		frame []byte
	}{
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}},
		{"reserved bits", []byte{0xf1, 0x80, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", n.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", n.Addr())
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("upgrade response: %v", err)
				}
				if line == "\r\n" {
					break
				}
			}
			// A command and its reply first: the connection is then fully set up.
			// (A bad frame in the instant between the 101 response and that
			// drops the connection without a close frame, as nbhttp does.)
			if _, err := c.Write(maskedText(`{"id":1,"op":"ping"}`)); err != nil {
				t.Fatal(err)
			}
			rc := &rawConn{t: t, nc: c, br: r} // its reads skip the server's heartbeat pings
			if op, _, err := rc.readFrameB0(5 * time.Second); err != nil || op != 0x81 {
				t.Fatalf("reply to ping: %x %v", op, err)
			}
			if _, err := c.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			b0, p, err := rc.readFrameB0(5 * time.Second)
			if err != nil {
				t.Fatalf("want a close frame: %v", err)
			}
			if b0 != 0x88 || len(p) < 2 || binary.BigEndian.Uint16(p) != protocol.CloseProtocolError {
				t.Fatalf("got frame %x %x, want a close frame with 1002", b0, p)
			}
		})
	}
}

// maskedText returns a client text frame (masked, short) carrying s.
func maskedText(s string) []byte {
	mask := [4]byte{9, 8, 7, 6}
	b := []byte{0x81, 0x80 | byte(len(s)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(s) {
		b = append(b, s[i]^mask[i%4])
	}
	return b
}
