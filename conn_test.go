package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestHeartbeatDropsSilentClient: a client that answers no ping is closed with
// 4002 after PingInterval+PongTimeout, while one that answers stays.
func TestHeartbeatDropsSilentClient(t *testing.T) {
	cfg := tethertest.Config()
	cfg.PingInterval = 100 * time.Millisecond
	// Long enough that the live client answers in time on a loaded machine.
	cfg.PongTimeout = time.Second
	n := tethertest.NewNode(t, cfg)

	// The live client reads all the time, so coder/websocket answers pings.
	live := dial(t, n)
	msgs := make(chan message, 16)
	go func() {
		defer close(msgs)
		for {
			m, err := live.tryRead(30 * time.Second)
			if err != nil {
				return
			}
			msgs <- m
		}
	}()

	start := time.Now() // before the server's first sight of the client
	silent, _ := rawDial(t, n, "/ws", nil)
	silent.pings = true
	pings := 0
	var push protocol.Disconnect
	for {
		op, p, err := silent.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("silent client: %v after %d pings", err, pings)
		}
		if op == 0x9 {
			pings++
			continue
		}
		if op == 0x1 {
			_ = json.Unmarshal(p, &push)
			continue
		}
		if op == 0x8 {
			if code := int(p[0])<<8 | int(p[1]); code != protocol.CloseHeartbeatTimeout {
				t.Fatalf("close code %d, want %d", code, protocol.CloseHeartbeatTimeout)
			}
			break
		}
	}
	if waited := time.Since(start); pings == 0 || waited < cfg.PingInterval+cfg.PongTimeout {
		t.Fatalf("closed after %v and %d pings: too early", waited, pings)
	}
	if push.Code != protocol.CloseHeartbeatTimeout || !push.Reconnect {
		t.Fatalf("disconnect push %+v", push)
	}

	// The live client has been through the same intervals and still works.
	live.send(protocol.Command{Op: protocol.OpPing})
	select {
	case m, ok := <-msgs:
		if !ok || m.Error != nil || m.ID == 0 {
			t.Fatalf("live client after heartbeats: %+v (open %v)", m, ok)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("live client got no reply")
	}
}

// TestSlowConsumerDoesNotDelayOthers: a subscriber that stops reading is
// disconnected with 4001 once its outbound buffer is full, while 100 others on
// a channel it shares receive every publication in order. To fill its buffers
// (kernel ones included: about 4 MiB on loopback) without sending that much to
// everyone, the stalled client is also the only subscriber of a bulk channel.
func TestSlowConsumerDoesNotDelayOthers(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxOutbound = 64 << 10
	cfg.MaxMessageSize = 16 << 10       // the outbound limit must hold two
	cfg.CloseTimeout = 20 * time.Second // time for the test to drain the stalled client
	n := tethertest.NewNode(t, cfg)
	const (
		ch     = "room"
		bulk   = "bulk"
		others = 100
		pubs   = 100
	)
	payload := strings.Repeat("x", 48<<10)

	// The stalled client: a small receive buffer, subscribed, then never reads.
	stalled := dialStalled(t, n.Addr().String())
	for i, name := range []string{ch, bulk} {
		stalled.writeFrame(0x81, []byte(fmt.Sprintf(`{"id":%d,"op":"subscribe","channel":%q}`, i+1, name)))
		if op, p, err := stalled.readFrame(5 * time.Second); err != nil || op != 0x1 || !strings.Contains(string(p), `"result"`) {
			t.Fatalf("stalled subscribe reply: %v %q", err, p)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, others)
	latency := make(chan time.Duration, others)
	for i := range others {
		c := dial(t, n)
		c.subscribe(ch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var worst time.Duration
			for want := uint64(1); want <= pubs; want++ {
				m, err := c.tryRead(20 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("client %d at offset %d: %w", i, want, err)
					return
				}
				if m.Op != protocol.PushPub || m.Offset != want {
					errs <- fmt.Errorf("client %d: got %s %d, want pub %d", i, m.Op, m.Offset, want)
					return
				}
				var d struct{ Sent int64 }
				_ = json.Unmarshal(m.Data, &d)
				worst = max(worst, time.Since(time.Unix(0, d.Sent)))
			}
			latency <- worst
		}()
	}
	for range pubs {
		if _, err := n.Publish(context.Background(), ch, json.RawMessage(fmt.Sprintf(`{"sent":%d}`, time.Now().UnixNano()))); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Publish(context.Background(), bulk, json.RawMessage(strconv.Quote(payload))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // a steady rate, not a burst
	}
	wg.Wait()
	close(errs)
	close(latency)
	for err := range errs {
		t.Error(err)
	}
	var worst time.Duration
	for l := range latency {
		worst = max(worst, l)
	}
	t.Logf("worst delivery latency to the %d readers: %v", others, worst)

	// Now drain the stalled client: what it got is in order, and it ends with
	// a slow consumer disconnect.
	last := map[string]uint64{}
	var push protocol.Disconnect
	for {
		op, p, err := stalled.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("stalled client after offsets %v: %v", last, err)
		}
		if op == 0x8 {
			if code := int(p[0])<<8 | int(p[1]); code != protocol.CloseSlowConsumer {
				t.Fatalf("close code %d, want %d", code, protocol.CloseSlowConsumer)
			}
			break
		}
		var m message
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Op {
		case protocol.PushPub:
			if m.Offset != last[m.Channel]+1 {
				t.Fatalf("stalled client: %s offset %d after %d", m.Channel, m.Offset, last[m.Channel])
			}
			last[m.Channel] = m.Offset
		case protocol.PushDisconnect:
			_ = json.Unmarshal(p, &push)
		}
	}
	if last[bulk] >= pubs || push.Code != protocol.CloseSlowConsumer || !push.Reconnect {
		t.Fatalf("stalled client got %v of %d publications and push %+v: want fewer and a reconnectable 4001", last, pubs, push)
	}
	t.Logf("stalled client was cut off after %v", last)
}

// writeAll writes b whole to nc, across write timeouts that a server slow to
// read may cause, until deadline.
func writeAll(nc net.Conn, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := nc.Write(b)
		b = b[n:]
		var ne net.Error
		if err != nil && (!errors.As(err, &ne) || !ne.Timeout() || time.Now().After(deadline)) {
			return err
		}
	}
	return nil
}

// dialStalled opens a raw WebSocket with a 4 KiB receive buffer.
func dialStalled(t *testing.T, addr string) *rawConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return handshake(t, nc, addr, "/ws", nil)
}

// TestPingFloodWithoutReading: a client that sends pings and reads nothing is
// closed as a slow consumer once its pongs pass the outbound limit, instead of
// growing the server's buffer.
func TestPingFloodWithoutReading(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxOutbound = 64 << 10
	cfg.MaxMessageSize = 16 << 10
	cfg.CloseTimeout = 20 * time.Second
	n := tethertest.NewNode(t, cfg)
	stats := n.StatsSampler()
	c := dialStalled(t, n.Addr().String())
	ping := maskedFrame(0x89, make([]byte, 125)) // the largest control payload
	// The client writes pings until the server counts it a slow consumer: a
	// loaded server that reads them slowly stalls a write, which is not the
	// sign of it (it keeps reading, and discarding, while it closes), and
	// reading the pongs before it has cut the client would drain its buffer.
	// The kernel takes megabytes of pongs before the server's own buffer
	// fills: tens of thousands of pings, a second's work, which a loaded
	// machine under -race has taken more than 20 s to do.
	deadline := time.Now().Add(time.Minute)
	sent := 0
	for ; sent%256 != 0 || stats(time.Now()).SlowConsumers == 0; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings and not a slow consumer", sent)
		}
		if err := writeAll(c.nc, ping, deadline); err != nil {
			t.Fatalf("%d pings and not a slow consumer: %v", sent, err)
		}
	}
	t.Logf("a slow consumer after %d pings", sent) // some still in the kernel's buffers
	for {
		op, p, err := c.readFrame(10 * time.Second)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if op == 0x8 {
			if code := int(p[0])<<8 | int(p[1]); code != protocol.CloseSlowConsumer {
				t.Fatalf("close code %d, want %d", code, protocol.CloseSlowConsumer)
			}
			return
		}
	}
}
