package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/internal/wire"
)

// serverFrame builds an unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = []byte{b0, byte(n)}
	case n <= 0xFFFF:
		b = []byte{b0, 126, byte(n >> 8), byte(n)}
	default:
		b = []byte{b0, 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(b, payload...)
}

func TestFrameReaderFeed(t *testing.T) {
	big := strings.Repeat("b", 70_000)
	var stream []byte
	stream = append(stream, serverFrame(true, opText, []byte("one"))...)
	stream = append(stream, serverFrame(false, opText, []byte("fr"))...)
	stream = append(stream, serverFrame(true, 0, []byte("agment"))...)
	stream = append(stream, serverFrame(true, opText, []byte(strings.Repeat("m", 300)))...)
	stream = append(stream, serverFrame(true, opBinary, []byte(big))...)
	stream = append(stream, serverFrame(true, opText, []byte("last"))...)
	want := []string{"one", "fragment", strings.Repeat("m", 300), big, "last"}

	tests := []struct {
		name  string
		chunk int // bytes per feed
	}{
		{"whole", len(stream)},
		{"one byte at a time", 1},
		{"odd chunks", 7},
		{"large chunks", 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			fr := &frameReader{i: 3}
			for data := stream; len(data) > 0; {
				n := min(tt.chunk, len(data))
				// feed gets a fresh buffer each time, as a poller's read would be reused
				chunk := bytes.Clone(data[:n])
				data = data[n:]
				if err := fr.feed(chunk, func(i int, msg []byte) {
					if i != 3 {
						t.Fatalf("handle got connection %d", i)
					}
					got = append(got, string(msg))
				}); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("got %d messages, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("message %d: %d bytes, want %d", i, len(got[i]), len(want[i]))
				}
			}
		})
	}
}

func TestFrameReaderClose(t *testing.T) {
	fr := &frameReader{}
	err := fr.feed(serverFrame(true, opClose, []byte{0x03, 0xe8}), func(int, []byte) {})
	if !errors.Is(err, errClosed) || !strings.Contains(err.Error(), "1000") {
		t.Fatalf("feed(close) = %v, want errClosed", err)
	}
}

// TestFrameReaderInflates: with permessage-deflate negotiated, a compressed
// message is inflated before it is handled; without, it is an error.
func TestFrameReaderInflates(t *testing.T) {
	z, err := wire.NewCompression(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(strings.Repeat(`{"seq":1,"ts":2,"text":"hello"}`, 20))
	frame := z.AppendFrame(nil, opText, msg)
	if frame[0]&0x40 == 0 {
		t.Fatal("the test frame is not compressed")
	}
	var got []byte
	fr := &frameReader{deflate: true}
	if err := fr.feed(frame, func(_ int, m []byte) { got = bytes.Clone(m) }); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("feed: %v, got %d bytes, want %d", err, len(got), len(msg))
	}
	if err := (&frameReader{}).feed(frame, func(int, []byte) {}); err == nil {
		t.Fatal("a compressed frame was accepted without permessage-deflate")
	}
}

// TestPollReaderPingWithHandshake: a ping that arrives with the handshake's
// answer, before the connection is on the poller, is answered (it once
// crashed the bench: an nbio.Conn cannot write before it is on an engine), and
// the messages around it are delivered.
func TestPollReaderPingWithHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pong := make(chan []byte, 1)
	go func() { // the server: no t.Fatal here
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		out := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n")
		out = append(out, serverFrame(true, opText, []byte("before"))...)
		out = append(out, serverFrame(true, opPing, []byte("p"))...)
		if _, err := nc.Write(out); err != nil {
			return
		}
		frame := make([]byte, 2+4+1) // a masked pong with one byte of payload
		if _, err := io.ReadFull(nc, frame); err != nil {
			return
		}
		pong <- frame
		_, _ = nc.Write(serverFrame(true, opText, []byte("after")))
		_, _ = io.Copy(io.Discard, nc) // until the client closes
	}()

	got := make(chan string, 2)
	p, err := newPollReader(1, func(_ int, msg []byte) { got <- string(msg) })
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/ws")
	c, err := dialWS(ctx, &net.Dialer{}, u, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.add(0, c); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	select {
	case f := <-pong:
		if f[0] != 0x80|opPong || f[1] != 0x80|1 || f[6]^f[2] != 'p' {
			t.Fatalf("answer to the ping: % x, want a masked pong carrying \"p\"", f)
		}
	case <-timeout:
		t.Fatal("no pong")
	}
	for _, want := range []string{"before", "after"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("message %q, want %q", m, want)
			}
		case <-timeout:
			t.Fatalf("no message %q", want)
		}
	}
}
