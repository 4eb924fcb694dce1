package tether_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/tetherhq/tether"
)

// rawConn is a hand-rolled WebSocket client that can send what real clients
// refuse to: invalid UTF-8, bad frames, and that can stop reading.
type rawConn struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	status int         // of the handshake
	header http.Header // of the handshake's response
	// pings makes readFrame return the server's ping frames. Without it
	// they are skipped: a connection's ping point falls anywhere in the
	// ping interval, so any test may see one.
	pings bool
}

// rawDial opens a WebSocket to path with the given extra headers and returns
// the conn and the handshake status.
func rawDial(t testing.TB, n *tether.Node, path string, header http.Header) (*rawConn, int) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", n.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := handshake(t, nc, n.Addr().String(), path, header)
	return c, c.status
}

// handshake runs the opening handshake on nc, which it closes when the test ends.
func handshake(t testing.TB, nc net.Conn, addr, path string, header http.Header) *rawConn {
	t.Helper()
	t.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	for k, v := range header {
		req.Header[k] = v
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := req.Write(nc); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &rawConn{t: t, nc: nc, br: br, status: resp.StatusCode, header: resp.Header}
}

// writeFrame writes one masked frame with the given first byte (FIN, RSV and
// opcode bits).
func (c *rawConn) writeFrame(b0 byte, payload []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(maskedFrame(b0, payload)); err != nil {
		c.t.Fatalf("write frame: %v", err)
	}
}

// maskedFrame returns one client frame: b0 (FIN, RSV, opcode), then the masked
// payload.
func maskedFrame(b0 byte, payload []byte) []byte {
	hdr := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, 0x80|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := []byte{1, 2, 3, 4}
	hdr = append(hdr, mask...)
	body := make([]byte, len(payload))
	for i := range payload {
		body[i] = payload[i] ^ mask[i%4]
	}
	return append(hdr, body...)
}

// readFrame reads one server frame, other than a ping unless c.pings is set.
func (c *rawConn) readFrame(timeout time.Duration) (opcode byte, payload []byte, err error) {
	b0, payload, err := c.readFrameB0(timeout)
	return b0 & 0x0f, payload, err
}

// readFrameB0 reads one server frame, other than a ping unless c.pings is
// set, and returns its first byte (FIN, RSV and opcode) and payload.
func (c *rawConn) readFrameB0(timeout time.Duration) (b0 byte, payload []byte, err error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		b0, payload, err = c.nextFrame()
		if err != nil || c.pings || b0&0x0f != 0x9 {
			return b0, payload, err
		}
	}
}

// nextFrame reads one server frame, within the read deadline set.
func (c *rawConn) nextFrame() (b0 byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame is masked")
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0], payload, err
}

// closeCode reads frames until a close frame and returns its code (0 if the
// connection ended without one).
func (c *rawConn) closeCode(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		op, p, err := c.readFrame(time.Until(deadline))
		if err != nil {
			return 0
		}
		if op == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
	c.t.Fatalf("no close frame within %v", timeout)
	return 0
}
