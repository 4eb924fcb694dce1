package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetherhq/tether/internal/wire"
)

// WebSocket opcodes.
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// deflateOffer is the permessage-deflate offer of a client that compresses
// nothing itself: it only inflates what the server compresses.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// errClosed is returned by readMessage when the server closed the connection
// with a close frame.
var errClosed = errors.New("bench: server closed the connection")

// closeError wraps errClosed with the close frame's code and reason.
func closeError(payload []byte) error {
	if len(payload) < 2 {
		return errClosed
	}
	return fmt.Errorf("%w: code %d %q", errClosed, binary.BigEndian.Uint16(payload), payload[2:])
}

// wsConn is a minimal client WebSocket connection: unfragmented frames out,
// frames read straight from the socket into one reused buffer. readMessage must
// be called from one goroutine at a time; writeMessage is safe for concurrent
// use.
type wsConn struct {
	nc      net.Conn
	r       *bufio.Reader
	deflate bool   // the server accepted permessage-deflate
	buf     []byte // payload of the last message read
	zbuf    []byte // the last message inflated
	// reply is the subscribe reply, when the connection was opened subscribed.
	reply []byte

	wmu  sync.Mutex
	wbuf []byte
}

// dialWS opens a WebSocket connection to u (ws:// only) through d, offering
// permessage-deflate when compress is set.
func dialWS(ctx context.Context, d *net.Dialer, u *url.URL, compress bool) (*wsConn, error) {
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("bench: %s: only ws:// URLs are supported", u)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s: %w", host, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\n"
	if compress {
		req += "Sec-WebSocket-Extensions: " + deflateOffer + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: upgrade request: %w", err)
	}
	r := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		nc.Close()
		return nil, fmt.Errorf("bench: upgrade refused: %s: %s", resp.Status, body)
	}
	h := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		nc.Close()
		return nil, errors.New("bench: upgrade response has a wrong Sec-WebSocket-Accept")
	}
	_ = nc.SetDeadline(time.Time{})
	deflate := strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	if deflate && !compress {
		nc.Close()
		return nil, errors.New("bench: the server negotiated permessage-deflate without an offer")
	}
	return &wsConn{nc: nc, r: r, deflate: deflate}, nil
}

// writeMessage sends one masked frame with the given opcode.
func (c *wsConn) writeMessage(opcode byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(payload)
	b := c.wbuf[:0]
	switch {
	case n < 126:
		b = append(b, 0x80|opcode, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|opcode, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|opcode, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], uint32(time.Now().UnixNano())^0x5bd1e995)
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

// readMessage returns the next text or binary message; the bytes are valid
// until the next call. It answers pings and returns errClosed on a close frame.
func (c *wsConn) readMessage() (opcode byte, payload []byte, err error) {
	c.buf = c.buf[:0]
	var msgOp byte
	var compressed bool
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return 0, nil, err
		}
		fin, op := hdr[0]&0x80 != 0, hdr[0]&0x0F
		n := uint64(hdr[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(c.r, ext[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(c.r, ext[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if hdr[1]&0x80 != 0 || n > maxMessage {
			return 0, nil, errors.New("bench: bad frame from server (masked or over 16 MiB)")
		}
		if op >= opClose { // control frame: handle and go on
			ctl := make([]byte, n)
			if _, err := io.ReadFull(c.r, ctl); err != nil {
				return 0, nil, err
			}
			switch op {
			case opPing:
				if err := c.writeMessage(opPong, ctl); err != nil {
					return 0, nil, err
				}
			case opClose:
				_ = c.writeMessage(opClose, ctl[:min(len(ctl), 2)])
				return 0, nil, closeError(ctl)
			}
			continue
		}
		if op != 0 {
			msgOp, compressed = op, hdr[0]&0x40 != 0
		}
		start := len(c.buf)
		c.buf = slices.Grow(c.buf, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.r, c.buf[start:]); err != nil {
			return 0, nil, err
		}
		if fin && compressed {
			if !c.deflate {
				return 0, nil, errors.New("bench: compressed frame without permessage-deflate")
			}
			c.zbuf, err = inflate(c.zbuf[:0], c.buf)
			return msgOp, c.zbuf, err
		}
		if fin {
			return msgOp, c.buf, nil
		}
	}
}

// inflate inflates a compressed message, as tether's server does.
func inflate(dst, msg []byte) ([]byte, error) {
	out, err := wire.Inflate(dst, msg, maxMessage)
	if err != nil {
		return out, fmt.Errorf("bench: inflate: %w", err)
	}
	return out, nil
}

// maxMessage is the largest message the load generator reads.
const maxMessage = 16 << 20

// Close closes the socket without a closing handshake.
func (c *wsConn) Close() error { return c.nc.Close() }
