package tether_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
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
			var reply [2]byte
			if _, err := io.ReadFull(r, reply[:]); err != nil || reply[0] != 0x81 {
				t.Fatalf("reply to ping: %x %v", reply, err)
			}
			if _, err := io.ReadFull(r, make([]byte, reply[1])); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(tt.frame); err != nil {
				t.Fatal(err)
			}
			var head [4]byte
			if _, err := io.ReadFull(r, head[:]); err != nil {
				t.Fatalf("want a close frame: %v", err)
			}
			if head[0] != 0x88 || binary.BigEndian.Uint16(head[2:]) != protocol.CloseProtocolError {
				t.Fatalf("got frame %x, want a close frame with 1002", head)
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
