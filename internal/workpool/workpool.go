// Package workpool runs short tasks on goroutines that outlive them: the HTTP
// requests of the node's event loop (nbhttp's ServerExecutor) when its
// backends can make a request wait on the network.
//
// A goroutine started per task begins with a small stack and grows it by
// copying on most requests (a ServeMux match, a JSON decode): under a steady
// stream of API calls that copying costs as much as the request's own work. A
// worker of the pool keeps its grown stack from one task to the next, and
// exits after it has been idle for a while, so that a burst does not hold
// memory for ever.
//
// The package runs tasks; it must not order them (nbio orders one connection's
// jobs itself) or know what they do.
package workpool

import (
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs tasks on up to max workers, and on a goroutine of their own
// past that (it never makes its caller, an event loop, wait). All methods are
// safe for concurrent use. Close it to let its workers go.
type Pool struct {
	tasks   chan func()
	quit    chan struct{} // closed by Close
	max     int64
	workers atomic.Int64
	idle    time.Duration
	log     *slog.Logger

	// mu orders Go's wg.Add before Close's wg.Wait: Go holds it shared,
	// Close exclusively to set closed.
	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup // the goroutines started before Close
}

// New returns a pool of at most size workers (at least 1), each exiting after
// idle without a task. log receives the panics of tasks; nil discards them.
func New(size int, idle time.Duration, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{tasks: make(chan func()), quit: make(chan struct{}), max: int64(max(size, 1)), idle: idle, log: log}
}

// Go runs f on an idle worker, or on a new one while there are fewer than
// max, or else on a goroutine of its own. It does not wait for f.
func (p *Pool) Go(f func()) {
	select {
	case p.tasks <- f:
		return
	default:
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		go p.run(f)
		return
	}
	p.wg.Add(1)
	if p.workers.Add(1) <= p.max {
		go p.work(f)
		return
	}
	p.workers.Add(-1)
	go func() {
		defer p.wg.Done()
		p.run(f)
	}()
}

// Close makes the idle workers exit, and the busy ones once their task is
// done, and waits until every task given before it has returned. Tasks given
// after it run on goroutines of their own, which it does not wait for.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Workers returns how many workers are running, busy or idle.
func (p *Pool) Workers() int { return int(p.workers.Load()) }

// work runs f, then the tasks handed to it, until it has been idle for
// p.idle.
func (p *Pool) work(f func()) {
	defer p.wg.Done()
	defer p.workers.Add(-1)
	timer := time.NewTimer(p.idle)
	defer timer.Stop()
	for {
		p.run(f)
		timer.Reset(p.idle)
		select {
		case f = <-p.tasks:
		case <-timer.C:
			return
		case <-p.quit:
			return
		}
	}
}

// run calls f, logging a panic instead of ending the process, as nbio's own
// pool does.
func (p *Pool) run(f func()) {
	defer func() {
		if v := recover(); v != nil {
			buf := make([]byte, 16<<10)
			buf = buf[:runtime.Stack(buf, false)]
			p.log.Error("task panicked", "panic", fmt.Sprint(v), "stack", string(buf))
		}
	}()
	f()
}
