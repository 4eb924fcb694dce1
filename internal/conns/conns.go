// Package conns is what the transports (WebSocket, TCP, gRPC streams) share
// about their connections: admission (refused while draining, or past a
// maximum counted across all transports together), a registry of the open
// connections with per-transport counts, and draining at shutdown.
//
// A transport calls Admit before it sets a connection up, then Add once the
// connection can be closed, and Remove when it is gone (Cancel instead of
// Add when the setup fails). Shutdown closes every registered connection
// through a fixed number of workers and waits, on a signal rather than by
// polling, until every admitted connection is removed or its context ends.
//
// The package must not do I/O or know a transport's framing: closing and
// dropping are the connection's own job (Conn).
//
// # Concurrency
//
// All methods of Registry are safe for concurrent use. Its locks (one per
// shard of the set) are leaves: no Conn method is called with one held.
package conns

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"sync"
	"sync/atomic"

	"github.com/tetherhq/tether/protocol"
)

// Transport names the transport a connection came over.
type Transport uint8

// The transports.
const (
	WebSocket Transport = iota // /ws and /ws/echo
	TCP                        // newline-delimited JSON over TCP
	GRPC                       // tether.v1.Tether/Connect streams
	numTransports
)

// Transports lists every transport, in a stable order.
var Transports = [...]Transport{WebSocket, TCP, GRPC}

var transportNames = [numTransports]string{"websocket", "tcp", "grpc"}

// String returns the transport's name as metrics label it: "websocket",
// "tcp" or "grpc".
func (t Transport) String() string {
	if t < numTransports {
		return transportNames[t]
	}
	return fmt.Sprintf("transport(%d)", uint8(t))
}

// Errors Admit and Add return; test them with errors.Is.
var (
	// ErrDraining: Shutdown has begun, no new connection is taken.
	ErrDraining = errors.New("conns: shutting down")
	// ErrTooMany: the maximum of open connections is reached.
	ErrTooMany = errors.New("conns: too many connections")
	// ErrTooManyFromIP: the remote address has MaxPerIP connections open.
	ErrTooManyFromIP = errors.New("conns: too many connections from this address")
)

// Conn is a registered connection, as Shutdown sees it. It must be
// comparable (a pointer, say): it is the key of the registry's set.
type Conn interface {
	// Close begins an orderly close: send d as the last message, then end the
	// connection. It must not block for long (it may queue the message and
	// return), must do nothing on a connection already closing, and must
	// lead to Remove once the connection is gone.
	Close(d protocol.Disconnect)
	// Drop ends the connection at once, with no last message; Shutdown calls
	// it on the connections left when its context ends. It must not block
	// and must lead to Remove.
	Drop()
}

const (
	shardCount = 16
	// DefaultDrainWorkers is how many connections Shutdown closes at once
	// when Config.DrainWorkers is zero.
	DefaultDrainWorkers = 8
)

// Config configures a Registry.
type Config struct {
	// MaxConns caps the connections admitted at once, over all transports
	// together; 0 means no limit.
	MaxConns int
	// DrainWorkers is how many connections Shutdown closes at once. Defaults
	// to DefaultDrainWorkers.
	DrainWorkers int
	// MaxPerIP caps the connections admitted at once from one remote IP
	// address (AdmitFrom), over all transports; 0 means no limit.
	MaxPerIP int
}

// Registry admits, registers and drains connections. Make one with New and
// share it between the transports of a node.
type Registry struct {
	max     int64
	workers int

	count       atomic.Int64                // admitted and not yet removed or cancelled
	byTransport [numTransports]atomic.Int64 // count, by transport
	draining    atomic.Bool
	empty       chan struct{} // closed once draining with count at zero
	emptyOnce   sync.Once

	seed   maphash.Seed
	shards [shardCount]struct {
		mu sync.Mutex
		// sets holds the registered connections, one set per transport: an
		// entry is the key (24 bytes with the padding Go gives an empty
		// value), where a map to the transport and the address took 40.
		sets [numTransports]map[Conn]struct{}
		// ips holds the address of those counted against MaxPerIP; nil
		// without MaxPerIP.
		ips map[Conn]string
	}

	maxPerIP   int
	ipMu       sync.Mutex // a leaf, like the shard locks
	perIP      map[string]int
	refusedIPs atomic.Int64
}

// New returns an empty registry.
func New(cfg Config) *Registry {
	r := &Registry{
		max:     int64(cfg.MaxConns),
		workers: cfg.DrainWorkers,
		empty:   make(chan struct{}),
		seed:    maphash.MakeSeed(),

		maxPerIP: cfg.MaxPerIP,
		perIP:    make(map[string]int),
	}
	if r.workers <= 0 {
		r.workers = DefaultDrainWorkers
	}
	for i := range r.shards {
		sh := &r.shards[i]
		for t := range sh.sets {
			sh.sets[t] = make(map[Conn]struct{})
		}
		if r.maxPerIP > 0 {
			sh.ips = make(map[Conn]string)
		}
	}
	return r
}

// Admit takes a place for a new connection on transport t, or says why not:
// ErrDraining once Shutdown has begun, ErrTooMany when MaxConns connections
// are admitted already. A nil error must be followed by Add or Cancel.
func (r *Registry) Admit(t Transport) error {
	if r.draining.Load() {
		return ErrDraining
	}
	for {
		n := r.count.Load()
		if r.max > 0 && n >= r.max {
			return ErrTooMany
		}
		if r.count.CompareAndSwap(n, n+1) {
			break
		}
	}
	r.byTransport[t].Add(1)
	// Checked again after counting: a Shutdown that found the count at zero
	// (and so signalled empty) must not see a connection admitted after.
	if r.draining.Load() {
		r.release(t)
		return ErrDraining
	}
	return nil
}

// IP returns the IP address of a remote address (host:port), the key of
// MaxPerIP.
func IP(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// AdmitFrom is Admit for a connection from ip (see IP), which it counts
// against MaxPerIP (unless ip is empty): past it, ErrTooManyFromIP. A nil
// error must be followed
// by AddFrom or CancelFrom with the same ip.
func (r *Registry) AdmitFrom(t Transport, ip string) error {
	if r.maxPerIP > 0 && ip != "" {
		r.ipMu.Lock()
		if r.perIP[ip] >= r.maxPerIP {
			r.ipMu.Unlock()
			r.refusedIPs.Add(1)
			return ErrTooManyFromIP
		}
		r.perIP[ip]++
		r.ipMu.Unlock()
	}
	if err := r.Admit(t); err != nil {
		r.releaseIP(ip)
		return err
	}
	return nil
}

// CancelFrom is Cancel for a connection admitted by AdmitFrom.
func (r *Registry) CancelFrom(t Transport, ip string) {
	r.release(t)
	r.releaseIP(ip)
}

func (r *Registry) releaseIP(ip string) {
	if r.maxPerIP <= 0 || ip == "" {
		return
	}
	r.ipMu.Lock()
	if r.perIP[ip]--; r.perIP[ip] <= 0 {
		delete(r.perIP, ip)
	}
	r.ipMu.Unlock()
}

// RefusedFromIP returns how many connections MaxPerIP refused.
func (r *Registry) RefusedFromIP() int64 { return r.refusedIPs.Load() }

// Cancel gives back the place of an admitted connection that was never
// added (its setup failed).
func (r *Registry) Cancel(t Transport) { r.release(t) }

// Add registers c, admitted on transport t, so that Shutdown reaches it.
// When Shutdown has begun meanwhile, c is registered all the same (Shutdown
// waits for its Remove) and Add returns ErrDraining: the caller must close c,
// for Shutdown may have missed it.
func (r *Registry) Add(t Transport, c Conn) error { return r.AddFrom(t, c, "") }

// AddFrom is Add for a connection admitted by AdmitFrom: Remove gives its
// place back to ip.
func (r *Registry) AddFrom(t Transport, c Conn, ip string) error {
	if r.maxPerIP <= 0 {
		ip = ""
	}
	sh := &r.shards[r.shardOf(c)]
	sh.mu.Lock()
	sh.sets[t][c] = struct{}{}
	if ip != "" {
		sh.ips[c] = ip
	}
	// Read under the lock: Shutdown sets draining before it visits the
	// shards, so either this sees it or Shutdown sees c.
	draining := r.draining.Load()
	sh.mu.Unlock()
	if draining {
		return ErrDraining
	}
	return nil
}

// Remove unregisters c and frees its place. It reports whether c was
// registered: calls after the first do nothing.
func (r *Registry) Remove(c Conn) bool {
	sh := &r.shards[r.shardOf(c)]
	sh.mu.Lock()
	t, ok := Transport(0), false
	for i, set := range sh.sets {
		if _, ok = set[c]; ok {
			t = Transport(i)
			delete(set, c)
			break
		}
	}
	ip := sh.ips[c]
	if ip != "" {
		delete(sh.ips, c)
	}
	sh.mu.Unlock()
	if ok {
		r.release(t)
		r.releaseIP(ip)
	}
	return ok
}

func (r *Registry) release(t Transport) {
	r.byTransport[t].Add(-1)
	if r.count.Add(-1) == 0 && r.draining.Load() {
		r.signalEmpty()
	}
}

func (r *Registry) signalEmpty() { r.emptyOnce.Do(func() { close(r.empty) }) }

func (r *Registry) shardOf(c Conn) int {
	return int(maphash.Comparable(r.seed, c) % shardCount)
}

// Len returns the number of connections admitted and not yet removed, on
// every transport: those being set up count too.
func (r *Registry) Len() int { return int(r.count.Load()) }

// Count returns the number of connections admitted on transport t and not
// yet removed.
func (r *Registry) Count(t Transport) int { return int(r.byTransport[t].Load()) }

// Draining reports whether Shutdown has begun.
func (r *Registry) Draining() bool { return r.draining.Load() }

// Conns returns the connections registered on transport t, in no order.
func (r *Registry) Conns(t Transport) []Conn {
	var out []Conn
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for c := range sh.sets[t] {
			out = append(out, c)
		}
		sh.mu.Unlock()
	}
	return out
}

// Each calls f for every registered connection, in no order. f runs with a
// lock of the registry held: it must not block or call the registry, nor
// call a Conn method that may (Close, Drop); collect and call after.
func (r *Registry) Each(f func(Conn)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for _, set := range sh.sets {
			for c := range set {
				f(c)
			}
		}
		sh.mu.Unlock()
	}
}

func (r *Registry) all() []Conn {
	out := make([]Conn, 0, r.Len())
	r.Each(func(c Conn) { out = append(out, c) })
	return out
}

// Shutdown refuses new connections from here on, closes every registered
// connection with d through a fixed number of workers, and waits until every
// admitted connection is removed. When ctx ends first it drops the ones left
// and returns an error wrapping ctx's. It may be called again: later calls
// close and wait for what is left.
func (r *Registry) Shutdown(ctx context.Context, d protocol.Disconnect) error {
	r.draining.Store(true)
	if r.count.Load() == 0 {
		r.signalEmpty()
	}
	all := r.all()
	work := make(chan Conn)
	var wg sync.WaitGroup
	for range min(r.workers, len(all)) {
		wg.Go(func() {
			for c := range work {
				c.Close(d)
			}
		})
	}
feed:
	for _, c := range all {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	select {
	case <-r.empty:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-r.empty: // emptied just as ctx ended
		return nil
	default:
	}
	left := r.Len()
	for _, c := range r.all() {
		c.Drop()
	}
	return fmt.Errorf("conns: %d connections left when shutdown's time ran out: %w", left, ctx.Err())
}
