package tether_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// readLines reads lines until the server closes the connection, and returns
// them and how the reading ended.
func readLines(t *testing.T, c net.Conn) ([]string, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		lines = append(lines, strings.TrimSuffix(line, "\n"))
	}
}

// readLine returns the next line from r other than a heartbeat ping (a
// connection's ping point falls anywhere in the ping interval, so any test
// may see one).
func readLine(r *bufio.Reader) ([]byte, error) {
	for {
		line, err := r.ReadBytes('\n')
		var m message
		if err != nil || json.Unmarshal(line, &m) != nil || !isPing(m) {
			return line, err
		}
	}
}

// assertServing checks that the node still serves a fresh TCP client.
func assertServing(t *testing.T, e *env) {
	t.Helper()
	c := e.dialTCP()
	if m := c.call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
		t.Fatalf("ping after bad input: %+v", m)
	}
}

func TestTCPBadInput(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxMessageSize = 1024
	e := startEnv(t, cfg, false)
	tests := []struct {
		name  string
		input string
		// want are the lines expected back, by their error code or push op.
		want []string
		// closed: the server ends the connection after them.
		closed bool
	}{
		{"invalid json", "{nope\n" + `{"id":1,"op":"ping"}` + "\n", []string{"bad_request", "result"}, false},
		{"invalid utf-8", "\xff\xfe\n" + `{"id":1,"op":"ping"}` + "\n", []string{"bad_request", "result"}, false},
		{"unknown op", `{"id":1,"op":"fly"}` + "\n", []string{"unknown_op"}, false},
		{"not an object", "[1,2]\n42\n", []string{"bad_request", "bad_request"}, false},
		{"blank lines and CRLF", "\n \r\n" + `{"id":1,"op":"ping"}` + "\r\n", []string{"result"}, false},
		{"line over the limit", strings.Repeat("x", 2000), []string{"disconnect"}, true},
		{"long line then newline", `{"id":1,"op":"publish","channel":"a","data":"` + strings.Repeat("y", 1100) + "\"}\n", []string{"disconnect"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			c := e.dialTCPRaw()
			// Write in small pieces: lines split across reads must join up.
			for chunk := range pieces(tt.input, 7) {
				if _, err := c.Write([]byte(chunk)); err != nil {
					t.Fatal(err)
				}
			}
			r := bufio.NewReader(c)
			for _, want := range tt.want {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := readLine(r)
				if err != nil {
					t.Fatalf("reading the line for %s: %v", want, err)
				}
				var m message
				if err := json.Unmarshal(line, &m); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				got := m.Op
				switch {
				case m.Error != nil:
					got = m.Error.Code
				case m.Result != nil:
					got = "result"
				}
				if got != want {
					t.Fatalf("got %s, want %s", line, want)
				}
				if want == "disconnect" && (m.Code != protocol.CloseTooBig || m.Reconnect) {
					t.Fatalf("got %s, want code %d without reconnect", line, protocol.CloseTooBig)
				}
			}
			if tt.closed {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
					t.Fatalf("after the disconnect line: %v, want EOF", err)
				}
			}
			assertServing(t, e)
		})
	}
}

// pieces yields s in pieces of n bytes.
func pieces(s string, n int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

func TestTCPManyLinesInOneWrite(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	c := e.dialTCPRaw()
	var in bytes.Buffer
	const n = 50
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&in, `{"id":%d,"op":"ping"}`+"\n", i)
	}
	if _, err := c.Write(in.Bytes()); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 1; i <= n; i++ {
		line, err := readLine(r)
		if err != nil {
			t.Fatal(err)
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil || m.ID != uint64(i) || m.Error != nil {
			t.Fatalf("reply %d: %s", i, line)
		}
	}
}

func TestTCPHalfLineThenDisconnect(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	c := e.dialTCPRaw()
	if _, err := c.Write([]byte(`{"id":1,"op":"subscr`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the TCP connection", func() bool { return e.n.Info().TCPConnections == 1 })
	_ = c.Close()
	waitFor(t, "the TCP connection to be released", func() bool { return e.n.Info().TCPConnections == 0 })
	assertServing(t, e)
}

func TestTCPHeartbeat(t *testing.T) {
	t.Run("pings, and a client that answers stays", func(t *testing.T) {
		cfg := tethertest.Config()
		cfg.PingInterval = 50 * time.Millisecond
		cfg.PongTimeout = 5 * time.Second // room for a loaded machine
		e := startEnv(t, cfg, false)
		c := e.dialTCP()
		c.pings = true
		for range 5 {
			m := c.read()
			if m.Op != protocol.PushPing {
				t.Fatalf("got %+v, want a ping", m)
			}
			c.send(protocol.Command{Op: protocol.OpPong})
		}
		if n := e.n.Info().HeartbeatTimeouts; n != 0 {
			t.Fatalf("%d heartbeat timeouts, want none", n)
		}
	})
	t.Run("a silent client is dropped", func(t *testing.T) {
		cfg := tethertest.Config()
		cfg.PingInterval = 50 * time.Millisecond
		cfg.PongTimeout = 200 * time.Millisecond
		e := startEnv(t, cfg, false)
		c := e.dialTCPRaw()
		lines, _ := readLines(t, c) // never answers
		if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], fmt.Sprintf(`"code":%d`, protocol.CloseHeartbeatTimeout)) {
			t.Fatalf("lines %q: want pings, then a disconnect with code %d", lines, protocol.CloseHeartbeatTimeout)
		}
	})
}

func TestTCPSlowConsumer(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxMessageSize = 8 << 10
	cfg.MaxOutbound = 256 << 10
	e := startEnv(t, cfg, false)
	const channel = "firehose"

	// The slow client never reads. The kernel buffers some megabytes for it
	// (shrinking its receive buffer instead stalls TCP in zero-window probes,
	// which slows the test rather than speeding it up), then the server's
	// queue fills.
	slow := e.dialTCPRaw()
	if _, err := slow.Write([]byte(`{"id":1,"op":"subscribe","channel":"` + channel + `"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	fast := e.dialTCP()
	fast.subscribe(channel, nil)
	waitFor(t, "both subscriptions", func() bool { return e.n.Info().Subscriptions == 2 })

	// The fast client reads in its own goroutine, passing on the offsets.
	const maxPubs = 2000 // 64 MB
	offsets := make(chan uint64, maxPubs)
	readErr := make(chan error, 1)
	go func() {
		for {
			m, err := fast.tryRead(10 * time.Second)
			if err != nil {
				readErr <- err
				return
			}
			if m.Op == protocol.PushPub {
				offsets <- m.Offset
			}
		}
	}()
	// Publish in lockstep with the fast reader, so that only the slow one
	// falls behind.
	payload := json.RawMessage(`"` + strings.Repeat("p", 32<<10) + `"`)
	for n := uint64(1); e.n.Info().SlowConsumers == 0; n++ {
		if n > maxPubs {
			t.Fatalf("no slow consumer after %d publications of 32 KB", maxPubs)
		}
		if _, err := e.n.Publish(context.Background(), channel, payload); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-offsets:
			if got != n {
				t.Fatalf("fast reader: offset %d, want %d", got, n)
			}
		case err := <-readErr:
			t.Fatalf("fast reader at offset %d: %v", n, err)
		}
	}
	// The slow client, reading at last, gets what the kernel held, in order,
	// then the end of the connection (the final disconnect line too, when it
	// left before the close timeout).
	lines, err := readLines(t, slow)
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("slow consumer: %d lines, then %v; want the connection closed", len(lines), err)
	}
	want := uint64(1)
	for _, line := range lines[1:] { // the first is the subscribe reply
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("slow consumer: line %.100q: %v", line, err)
		}
		switch {
		case m.Op == protocol.PushPub && m.Offset == want:
			want++
		case m.Op == protocol.PushDisconnect && m.Code == protocol.CloseSlowConsumer && m.Reconnect:
		case isPing(m): // a heartbeat may come in between
		default:
			t.Fatalf("slow consumer: got %.100q, want offset %d or a disconnect with code %d", line, want, protocol.CloseSlowConsumer)
		}
	}
	waitFor(t, "the slow consumer to be dropped", func() bool { return e.n.Info().TCPConnections == 1 })
	assertServing(t, e)
}

// TestTCPTLSPingDuringHandshake: heartbeat pings that fall while a TLS
// client is in its handshake wait for it. (llib's tls.Conn runs the
// handshake in Write as well, under no lock: a ping then ran it at the same
// time as the event loop, a data race.)
func TestTCPTLSPingDuringHandshake(t *testing.T) {
	cfg := tethertest.Config()
	cfg.PingInterval = 5 * time.Millisecond // a ping point every few milliseconds: some fall in handshakes
	cfg.PongTimeout = time.Minute
	e := startEnv(t, cfg, true)
	for range 20 {
		if m := e.dialTCP().call(protocol.Command{Op: protocol.OpPing}); m.Error != nil {
			t.Fatalf("ping: %+v", m)
		}
	}
}

// TestTCPPlaintextToTLS: a client speaking plaintext to the TLS listener is
// dropped, and TLS clients are still served.
func TestTCPPlaintextToTLS(t *testing.T) {
	e := startEnv(t, tethertest.Config(), true)
	c, err := net.DialTimeout("tcp", e.n.TCPAddr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"id":1,"op":"ping"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("plaintext client: %v, want the connection closed", err)
	}
	assertServing(t, e)
}
