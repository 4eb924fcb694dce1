package conns

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetherhq/tether/protocol"
)

// fakeConn records how it was ended. On Close it removes itself from the
// registry, on a goroutine of its own (as a transport's event loop would),
// unless stubborn; on Drop it always does.
type fakeConn struct {
	r        *Registry
	stubborn bool
	closes   atomic.Int32
	last     atomic.Pointer[protocol.Disconnect]
	drops    atomic.Int32
	onClose  func() // nil: nothing more
}

func (c *fakeConn) Close(d protocol.Disconnect) {
	c.closes.Add(1)
	c.last.Store(&d)
	if c.onClose != nil {
		c.onClose()
	}
	if !c.stubborn {
		go c.r.Remove(c)
	}
}

func (c *fakeConn) Drop() {
	c.drops.Add(1)
	go c.r.Remove(c)
}

// admitAdd admits and adds a fake connection on t.
func admitAdd(t *testing.T, r *Registry, tr Transport, stubborn bool) *fakeConn {
	t.Helper()
	if err := r.Admit(tr); err != nil {
		t.Fatalf("Admit(%v): %v", tr, err)
	}
	c := &fakeConn{r: r, stubborn: stubborn}
	if err := r.Add(tr, c); err != nil {
		t.Fatalf("Add(%v): %v", tr, err)
	}
	return c
}

func shutdown(t *testing.T, r *Registry, d time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.Shutdown(ctx, protocol.DisconnectShutdown)
}

// TestAdmitCountsAcrossTransports: the maximum is one count over every
// transport; a refusal is ErrTooMany; Cancel and Remove give places back.
func TestAdmitCountsAcrossTransports(t *testing.T) {
	r := New(Config{MaxConns: 3})
	ws := admitAdd(t, r, WebSocket, false)
	admitAdd(t, r, TCP, false)
	if err := r.Admit(GRPC); err != nil {
		t.Fatalf("third admission: %v", err)
	}
	for _, tr := range Transports {
		if err := r.Admit(tr); !errors.Is(err, ErrTooMany) {
			t.Fatalf("Admit(%v) past the max: %v, want ErrTooMany", tr, err)
		}
	}
	want := map[Transport]int{WebSocket: 1, TCP: 1, GRPC: 1}
	for tr, n := range want {
		if got := r.Count(tr); got != n {
			t.Errorf("Count(%v) = %d, want %d", tr, got, n)
		}
	}
	if r.Len() != 3 {
		t.Fatalf("Len = %d, want 3", r.Len())
	}

	r.Cancel(GRPC) // the gRPC setup failed
	if err := r.Admit(TCP); err != nil {
		t.Fatalf("after Cancel: %v", err)
	}
	r.Cancel(TCP)
	if !r.Remove(ws) || r.Remove(ws) {
		t.Fatal("Remove: want true once, then false")
	}
	if r.Count(WebSocket) != 0 || r.Len() != 1 {
		t.Fatalf("after Remove: websocket %d, total %d; want 0 and 1", r.Count(WebSocket), r.Len())
	}
	if got := r.Conns(TCP); len(got) != 1 {
		t.Fatalf("Conns(TCP) = %v, want one", got)
	}
}

func TestNoLimit(t *testing.T) {
	r := New(Config{})
	for range 1000 {
		if err := r.Admit(TCP); err != nil {
			t.Fatal(err)
		}
	}
	if r.Len() != 1000 {
		t.Fatalf("Len = %d", r.Len())
	}
}

// TestConcurrentAdmitsNeverExceedMax: however admissions and releases
// interleave, no more than MaxConns connections hold a place at once, and no
// admission is refused while a place is free (none is here: every refusal is
// counted against a full house).
func TestConcurrentAdmitsNeverExceedMax(t *testing.T) {
	const maxConns, goroutines, rounds = 5, 16, 2000
	r := New(Config{MaxConns: maxConns})
	var live, peak atomic.Int64
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		tr := Transports[g%len(Transports)]
		wg.Go(func() {
			for range rounds {
				if err := r.Admit(tr); err != nil {
					if !errors.Is(err, ErrTooMany) {
						t.Errorf("Admit: %v", err)
					}
					continue
				}
				admitted.Add(1)
				n := live.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				live.Add(-1)
				r.Cancel(tr)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > maxConns {
		t.Fatalf("%d connections held places at once, max %d", p, maxConns)
	}
	if admitted.Load() == 0 {
		t.Fatal("nothing admitted")
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d after every place was given back", r.Len())
	}
	for _, tr := range Transports {
		if r.Count(tr) != 0 {
			t.Fatalf("Count(%v) = %d", tr, r.Count(tr))
		}
	}
}

// TestShutdownClosesAndWaits: every connection, on every transport, gets the
// disconnect, and Shutdown returns once the last one is removed.
func TestShutdownClosesAndWaits(t *testing.T) {
	r := New(Config{MaxConns: 100})
	var all []*fakeConn
	for i := range 30 {
		all = append(all, admitAdd(t, r, Transports[i%3], false))
	}
	if err := shutdown(t, r, 10*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range all {
		if c.closes.Load() != 1 || *c.last.Load() != protocol.DisconnectShutdown || c.drops.Load() != 0 {
			t.Fatalf("conn %d: %d closes (last %+v), %d drops; want one close with the shutdown disconnect", i, c.closes.Load(), c.last.Load(), c.drops.Load())
		}
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d after Shutdown", r.Len())
	}
	if !r.Draining() {
		t.Fatal("Draining() false after Shutdown")
	}
}

// TestShutdownRefuses: once Shutdown has begun, admissions are refused, and
// a connection admitted before and added after is registered (Shutdown waits
// for it) but flagged to its caller.
func TestShutdownRefuses(t *testing.T) {
	r := New(Config{})
	if err := r.Admit(TCP); err != nil { // being set up when Shutdown begins
		t.Fatal(err)
	}
	// A registered connection: its Close tells that draining has begun.
	closing := make(chan struct{})
	first := admitAdd(t, r, WebSocket, false)
	first.onClose = func() { close(closing) }
	done := make(chan error, 1)
	go func() { done <- shutdown(t, r, 10*time.Second) }()
	<-closing
	for _, tr := range Transports {
		if err := r.Admit(tr); !errors.Is(err, ErrDraining) {
			t.Fatalf("Admit(%v) while draining: %v, want ErrDraining", tr, err)
		}
	}
	c := &fakeConn{r: r}
	if err := r.Add(TCP, c); !errors.Is(err, ErrDraining) {
		t.Fatalf("Add while draining: %v, want ErrDraining", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a connection still registered", err)
	default:
	}
	c.Close(protocol.DisconnectShutdown) // what the caller does on ErrDraining
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestShutdownEmpty returns at once, and so do later calls.
func TestShutdownEmpty(t *testing.T) {
	r := New(Config{})
	for range 2 {
		if err := shutdown(t, r, time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShutdownDeadline: connections that do not go by ctx's end are dropped,
// and the error says so, wrapping ctx's.
func TestShutdownDeadline(t *testing.T) {
	r := New(Config{})
	polite := admitAdd(t, r, WebSocket, false)
	stubborn := []*fakeConn{admitAdd(t, r, TCP, true), admitAdd(t, r, GRPC, true)}
	err := shutdown(t, r, 100*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if polite.drops.Load() != 0 {
		t.Error("a connection that went when asked was dropped")
	}
	for _, c := range stubborn {
		if c.closes.Load() != 1 || c.drops.Load() != 1 {
			t.Errorf("stubborn conn: %d closes, %d drops; want 1 and 1", c.closes.Load(), c.drops.Load())
		}
	}
	// The drops lead to Remove: the registry empties, and a second Shutdown
	// returns once it has.
	if err := shutdown(t, r, 10*time.Second); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestShutdownBoundedWorkers: Shutdown closes through DrainWorkers
// goroutines, however many connections there are, and no more than that many
// Close calls run at once.
func TestShutdownBoundedWorkers(t *testing.T) {
	const workers, n = 3, 40
	r := New(Config{DrainWorkers: workers})
	var inflight, peak atomic.Int32
	entered := make(chan struct{}, n)
	gate := make(chan struct{})
	for range n {
		c := admitAdd(t, r, TCP, false)
		c.onClose = func() {
			v := inflight.Add(1)
			for p := peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
			}
			entered <- struct{}{}
			<-gate
			inflight.Add(-1)
		}
	}
	base := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() { done <- shutdown(t, r, 10*time.Second) }()
	<-entered // the workers are all started before the first Close
	// Goroutines of earlier tests can only have ended since base was taken.
	if grown := runtime.NumGoroutine() - base; grown > 1+workers {
		t.Errorf("%d goroutines more during Shutdown, want at most %d (the caller and the workers)", grown, 1+workers)
	}
	for range workers - 1 { // every worker busy at once
		<-entered
	}
	for range n - workers { // then one more each time one finishes
		gate <- struct{}{}
		<-entered
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if p := peak.Load(); p != workers {
		t.Fatalf("%d Close calls ran at once, want %d", p, workers)
	}
}

// TestShutdownDeadlineWhileClosing: a Close that blocks does not keep
// Shutdown past ctx's end by more than that Close: the feeding of workers
// stops, and every connection left is dropped.
func TestShutdownDeadlineWhileClosing(t *testing.T) {
	r := New(Config{DrainWorkers: 1})
	entered := make(chan struct{}, 6)
	gate := make(chan struct{})
	var all []*fakeConn
	for range 6 {
		c := admitAdd(t, r, TCP, true)
		c.onClose = func() { entered <- struct{}{}; <-gate }
		all = append(all, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Shutdown(ctx, protocol.DisconnectShutdown) }()
	<-entered // the one worker is stuck in a Close
	cancel()
	close(gate)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want Canceled", err)
	}
	for i, c := range all {
		if c.drops.Load() != 1 {
			t.Fatalf("conn %d: dropped %d times, want once", i, c.drops.Load())
		}
	}
}

func TestTransportString(t *testing.T) {
	for tr, want := range map[Transport]string{WebSocket: "websocket", TCP: "tcp", GRPC: "grpc", 9: "transport(9)"} {
		if got := tr.String(); got != want {
			t.Errorf("%d: %q, want %q", tr, got, want)
		}
	}
}

// TestMaxPerIP: one address gets MaxPerIP places, another address its own;
// removing or cancelling gives a place back.
func TestMaxPerIP(t *testing.T) {
	r := New(Config{MaxPerIP: 2})
	a, b := IP("10.0.0.1:5000"), IP("[::1]:80")
	if a != "10.0.0.1" || b != "::1" {
		t.Fatalf("IP: %q %q", a, b)
	}
	c1, c2 := &fakeIPConn{}, &fakeIPConn{}
	for _, c := range []*fakeIPConn{c1, c2} {
		if err := r.AdmitFrom(WebSocket, a); err != nil {
			t.Fatal(err)
		}
		if err := r.AddFrom(WebSocket, c, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.AdmitFrom(TCP, a); !errors.Is(err, ErrTooManyFromIP) {
		t.Fatalf("third from a: %v", err)
	}
	if err := r.AdmitFrom(TCP, b); err != nil {
		t.Fatalf("from b: %v", err)
	}
	r.CancelFrom(TCP, b)
	r.Remove(c1)
	if err := r.AdmitFrom(GRPC, a); err != nil {
		t.Fatalf("after a remove: %v", err)
	}
	r.CancelFrom(GRPC, a)
	if r.RefusedFromIP() != 1 || r.Len() != 1 {
		t.Fatalf("refused %d, len %d", r.RefusedFromIP(), r.Len())
	}
}

type fakeIPConn struct{ _ int }

func (*fakeIPConn) Close(protocol.Disconnect) {}
func (*fakeIPConn) Drop()                     {}
