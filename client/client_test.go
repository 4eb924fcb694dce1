package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// checkGoroutines fails the test when, at its end, more goroutines run than
// at its start, once the ones that are stopping have had up to 5s to go.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond) // goroutines exiting give no signal
		}
	})
}

func dial(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// events collects a client's events and lets a test wait for one.
type events struct {
	ch chan client.Event
}

func newEvents() *events { return &events{ch: make(chan client.Event, 64)} }

func (e *events) handle(ev client.Event) {
	select {
	case e.ch <- ev:
	default: // a test that does not read them does not care
	}
}

// wait returns the next event of type typ, failing after d.
func (e *events) wait(t *testing.T, typ client.EventType, d time.Duration) client.Event {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case ev := <-e.ch:
			if ev.Type == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event after %v", typ, d)
		}
	}
}

// fakeServer is a WebSocket server speaking just enough of the protocol:
// answer decides the reply to each command (nil: no reply).
type fakeServer struct {
	*httptest.Server
	answer func(cmd protocol.Command) any
}

func newFakeServer(t *testing.T, answer func(protocol.Command) any) *fakeServer {
	t.Helper()
	f := &fakeServer{answer: answer}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, b, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			var cmd protocol.Command
			if json.Unmarshal(b, &cmd) != nil {
				return
			}
			res := f.answer(cmd)
			if res == nil {
				continue
			}
			if push, ok := res.(closeWith); ok {
				_ = ws.Write(r.Context(), websocket.MessageText, []byte(push.push))
				_ = ws.Close(push.code, "")
				return
			}
			out, _ := json.Marshal(protocol.Reply{ID: cmd.ID, Result: res})
			if ws.Write(r.Context(), websocket.MessageText, out) != nil {
				return
			}
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// closeWith, as an answer, makes the fake server send push and close with code.
type closeWith struct {
	push string
	code websocket.StatusCode
}

func (f *fakeServer) url() string { return "ws" + strings.TrimPrefix(f.URL, "http") }

func TestBackoffBounds(t *testing.T) {
	tests := []struct {
		base, limit time.Duration
		attempt     int
		ceil        time.Duration
	}{
		{100 * time.Millisecond, 10 * time.Second, 0, 100 * time.Millisecond},
		{100 * time.Millisecond, 10 * time.Second, 1, 200 * time.Millisecond},
		{100 * time.Millisecond, 10 * time.Second, 5, 3200 * time.Millisecond},
		{100 * time.Millisecond, 10 * time.Second, 7, 10 * time.Second},
		{100 * time.Millisecond, 10 * time.Second, 1000, 10 * time.Second},
		{time.Nanosecond, time.Hour, 100, time.Hour},
		{time.Second, time.Second, 3, time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v-%v-%d", tt.base, tt.limit, tt.attempt), func(t *testing.T) {
			delay := client.Backoff(tt.base, tt.limit)
			var top time.Duration
			for range 2000 {
				d := delay(tt.attempt)
				if d < 0 || d >= tt.ceil {
					t.Fatalf("delay %v outside [0, %v)", d, tt.ceil)
				}
				top = max(top, d)
			}
			// Full jitter spreads over the whole range: with 2000 draws the
			// largest is below half the ceiling with probability 2^-2000.
			if top < tt.ceil/2 {
				t.Fatalf("largest of 2000 delays %v: not spread over [0, %v)", top, tt.ceil)
			}
		})
	}
}

func TestOptionsRejectBadValues(t *testing.T) {
	tests := []struct {
		name string
		opt  client.Option
	}{
		{"dial timeout", client.WithDialTimeout(0)},
		{"write timeout", client.WithWriteTimeout(-time.Second)},
		{"ping timeout", client.WithPingTimeout(0)},
		{"backoff", client.WithBackoff(time.Second, time.Millisecond)},
		{"delay func", client.WithReconnectDelay(nil)},
		{"dialer", client.WithDialer(nil)},
		{"http client", client.WithHTTPClient(nil)},
		{"read limit", client.WithReadLimit(10)},
		{"logger", client.WithLogger(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Dial(context.Background(), "ws://127.0.0.1:1/ws", tt.opt)
			if !errors.Is(err, client.ErrBadOption) {
				t.Fatalf("Dial: %v, want ErrBadOption", err)
			}
		})
	}
}

func TestOptionsDialValidates(t *testing.T) {
	o := client.DefaultOptions()
	o.ReadLimit = 0
	if _, err := o.Dial(context.Background(), "ws://127.0.0.1:1/ws"); !errors.Is(err, client.ErrBadOption) {
		t.Fatalf("Options.Dial with a zero read limit: %v, want ErrBadOption", err)
	}
}

func TestDialFails(t *testing.T) {
	f := newFakeServer(t, func(protocol.Command) any { return nil }) // never answers connect
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := client.Dial(ctx, f.url()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent server: %v, want deadline exceeded", err)
	}
}

// TestCancelledCallKeepsConnection: a call whose context ends while it waits
// for its reply returns the context's error; the connection lives on.
func TestCancelledCallKeepsConnection(t *testing.T) {
	checkGoroutines(t)
	var subscribes atomic.Int32
	f := newFakeServer(t, func(cmd protocol.Command) any {
		switch cmd.Op {
		case protocol.OpConnect:
			return protocol.ConnectResult{Client: "c1", Version: 1}
		case protocol.OpPublish:
			return protocol.Position{Epoch: "e", Offset: 1}
		case protocol.OpSubscribe:
			if subscribes.Add(1) > 1 { // the first is never answered
				return protocol.SubscribeResult{Epoch: "e"}
			}
		}
		return nil // history: never answered
	})
	ev := newEvents()
	c := dial(t, f.url(), client.WithEventHandler(ev.handle))
	ev.wait(t, client.Connected, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.History(ctx, "x", nil, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("History: %v, want deadline exceeded", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer scancel()
	if _, err := c.Subscribe(sctx, "y", func(*protocol.Publication) {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe: %v, want deadline exceeded", err)
	}
	// The subscription was undone: subscribing again, with a live context, is
	// sent to the server and confirmed (not refused as ErrSubscribed).
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := c.Subscribe(ctx2, "y", func(*protocol.Publication) {}); err != nil {
		t.Fatalf("Subscribe after a cancelled Subscribe: %v", err)
	}
	if got := subscribes.Load(); got != 2 {
		t.Fatalf("the server got %d subscribes, want 2", got)
	}
	if _, err := c.Publish(ctx2, "x", json.RawMessage("1")); err != nil {
		t.Fatalf("Publish after a cancelled call: %v", err)
	}
	select {
	case e := <-ev.ch:
		t.Fatalf("unexpected event %+v: the connection must be untouched", e)
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestDeadConnectionDetected: a server that announces pings and then sends
// nothing is declared dead after ping interval + PingTimeout, and the client
// reconnects.
func TestDeadConnectionDetected(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t, func(cmd protocol.Command) any {
		if cmd.Op == protocol.OpConnect {
			return protocol.ConnectResult{Client: "c1", Version: 1, Ping: 1}
		}
		return nil
	})
	ev := newEvents()
	c := dial(t, f.url(), client.WithEventHandler(ev.handle), client.WithPingTimeout(100*time.Millisecond),
		client.WithBackoff(time.Millisecond, 10*time.Millisecond))
	ev.wait(t, client.Connected, time.Second)
	start := time.Now()
	d := ev.wait(t, client.Disconnected, 10*time.Second)
	if !errors.Is(d.Err, client.ErrConnectionLost) {
		t.Fatalf("disconnected with %v, want ErrConnectionLost", d.Err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("declared dead after %v, before the ping interval", waited)
	}
	ev.wait(t, client.Connected, 5*time.Second)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestServerPingsKeepConnection: pings alone keep an idle connection alive.
// The client declares the connection dead after 2.5 s of silence: the server's
// 1 s pings (their tick adds up to a quarter of that) keep it alive with a
// margin a loaded machine meets, and the test watches twice that long, so that
// a client that ignored the pings would be declared dead in plain view.
func TestServerPingsKeepConnection(t *testing.T) {
	const pingTimeout = 1500 * time.Millisecond
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback, PingInterval: time.Second})
	ev := newEvents()
	c := dial(t, tethertest.WSURL(n, "/ws"), client.WithEventHandler(ev.handle), client.WithPingTimeout(pingTimeout))
	ev.wait(t, client.Connected, time.Second)
	select {
	case e := <-ev.ch:
		t.Fatalf("event %+v on an idle connection that the server pings", e)
	case <-time.After(2 * (time.Second + pingTimeout)): // five ping intervals, twice the dead limit
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, "x", json.RawMessage("1")); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentUse publishes, subscribes, unsubscribes and reads history from
// many goroutines, and closes the client in the middle of it all: every call
// returns, with a result or ErrClosed.
func TestConcurrentUse(t *testing.T) {
	checkGoroutines(t)
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	c := dial(t, tethertest.WSURL(n, "/ws"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	started := make(chan struct{}, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := fmt.Sprintf("ch%d", g%3)
			for i := 0; ; i++ {
				if i == 5 {
					started <- struct{}{}
				}
				var err error
				switch i % 4 {
				case 0:
					_, err = c.Publish(ctx, ch, json.RawMessage(fmt.Sprint(i)))
				case 1:
					var s *client.Subscription
					s, err = c.Subscribe(ctx, fmt.Sprintf("own%d", g), func(*protocol.Publication) {})
					if err == nil {
						err = s.Unsubscribe(ctx)
					}
				case 2:
					_, err = c.History(ctx, ch, nil, 10)
				case 3:
					pubs := make(chan *protocol.Publication, 1)
					var s *client.Subscription
					s, err = c.SubscribeChan(ctx, fmt.Sprintf("own%d", g), pubs)
					if err == nil {
						err = s.Unsubscribe(ctx)
					}
				}
				if errors.Is(err, client.ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, client.ErrConnectionLost) {
					errs <- fmt.Errorf("goroutine %d call %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	for range 8 {
		<-started
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCloseDuringReconnect: Close interrupts the backoff sleep at once, and
// calls waiting for a connection return ErrClosed.
func TestCloseDuringReconnect(t *testing.T) {
	checkGoroutines(t)
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	sleeping := make(chan struct{}, 1)
	delay := func(int) time.Duration {
		select {
		case sleeping <- struct{}{}:
		default:
		}
		return time.Hour
	}
	c := dial(t, tethertest.WSURL(n, "/ws"), client.WithReconnectDelay(delay))
	tethertest.Close(n)
	select {
	case <-sleeping:
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not start reconnecting")
	}
	waiting := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Publish(ctx, "x", json.RawMessage("1"))
		waiting <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt the reconnect delay")
	}
	if err := <-waiting; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Publish waiting for a connection: %v, want ErrClosed", err)
	}
	if _, err := c.Subscribe(context.Background(), "x", func(*protocol.Publication) {}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrClosed", err)
	}
}

// TestSubscribeTwice: one subscription per channel per client.
func TestSubscribeTwice(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	c := dial(t, tethertest.WSURL(n, "/ws"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := c.Subscribe(ctx, "x", func(*protocol.Publication) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "x", func(*protocol.Publication) {}); !errors.Is(err, client.ErrSubscribed) {
		t.Fatalf("second Subscribe: %v, want ErrSubscribed", err)
	}
	if err := s.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "x", func(*protocol.Publication) {}); err != nil {
		t.Fatalf("Subscribe after Unsubscribe: %v", err)
	}
	var perr *protocol.Error
	if _, err := c.Subscribe(ctx, "bad channel", func(*protocol.Publication) {}); !errors.As(err, &perr) || perr.Code != protocol.ErrInvalidChannel {
		t.Fatalf("Subscribe to an invalid channel: %v, want %s", err, protocol.ErrInvalidChannel)
	}
}

// TestServerSaysDoNotReconnect: a disconnect push with reconnect:false stops
// the client for good.
func TestServerSaysDoNotReconnect(t *testing.T) {
	checkGoroutines(t)
	f := newFakeServer(t, func(cmd protocol.Command) any {
		switch cmd.Op {
		case protocol.OpConnect:
			return protocol.ConnectResult{Client: "c1", Version: 1}
		case protocol.OpPublish:
			return closeWith{`{"op":"disconnect","code":4500,"reason":"banned","reconnect":false}`, 4500}
		}
		return nil
	})
	ev := newEvents()
	c := dial(t, f.url(), client.WithEventHandler(ev.handle), client.WithBackoff(time.Millisecond, time.Millisecond))
	ev.wait(t, client.Connected, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Publish(ctx, "x", json.RawMessage("1")); !errors.Is(err, client.ErrConnectionLost) {
		t.Fatalf("Publish answered by a disconnect: %v, want ErrConnectionLost", err)
	}
	if d := ev.wait(t, client.Disconnected, 5*time.Second); !errors.Is(d.Err, client.ErrDisconnected) {
		t.Fatalf("disconnected with %v, want ErrDisconnected", d.Err)
	}
	if _, err := c.Publish(ctx, "x", json.RawMessage("1")); !errors.Is(err, client.ErrDisconnected) {
		t.Fatalf("Publish after the server's disconnect: %v, want ErrDisconnected", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestHandlerCallsClient: a handler may unsubscribe its own subscription and
// close the client without deadlock.
func TestHandlerCallsClient(t *testing.T) {
	checkGoroutines(t)
	tests := []struct {
		name string
		call func(c *client.Client, s *client.Subscription) error
	}{
		{"unsubscribe", func(_ *client.Client, s *client.Subscription) error { return s.Unsubscribe(context.Background()) }},
		{"close", func(c *client.Client, _ *client.Subscription) error { return c.Close() }},
		{"publish", func(c *client.Client, _ *client.Subscription) error {
			_, err := c.Publish(context.Background(), "other", json.RawMessage("2"))
			return err
		}},
	}
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, tethertest.WSURL(n, "/ws"))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			subc := make(chan *client.Subscription, 1)
			done := make(chan error, 1)
			s, err := c.Subscribe(ctx, "x", func(*protocol.Publication) {
				done <- tt.call(c, <-subc)
			})
			if err != nil {
				t.Fatal(err)
			}
			subc <- s
			if _, err := c.Publish(ctx, "x", json.RawMessage("1")); err != nil && !errors.Is(err, client.ErrClosed) {
				t.Fatal(err) // ErrClosed: the handler closed the client before the reply
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("%s from a handler: %v", tt.name, err)
				}
			case <-ctx.Done():
				t.Fatalf("%s from a handler did not return", tt.name)
			}
			_ = c.Close()
		})
	}
}
