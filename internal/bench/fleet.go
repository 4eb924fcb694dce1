package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// fleet is a set of open client connections.
type fleet struct {
	conns      []*wsConn // nil where the connection failed
	open       int
	connectLat *histShards
	failures   int
	firstErr   error
	limit      string // the limit the first failure points at, if any

	poll      *pollReader // set by read
	closeOnce sync.Once
}

// maxFailures is how many failed connections end the opening early.
const maxFailures = 100

// openFleet opens n connections to t's endpoint (echo: the echo endpoint),
// concurrency at a time, subscribing each to channel when t.Subscribe. Connect
// latency runs from the dial to the subscribe reply (or the upgrade).
func openFleet(ctx context.Context, t Target, n, concurrency int, channel string, echo bool) (*fleet, error) {
	return openFleetOn(ctx, t, n, concurrency, func(int) string { return channel }, echo)
}

// openFleetOn is openFleet with connection i on channelOf(i): subscribed to it
// when t.Subscribe, in the room of that name when t.Rooms.
func openFleetOn(ctx context.Context, t Target, n, concurrency int, channelOf func(i int) string, echo bool) (*fleet, error) {
	u, err := t.wsURL(echo)
	if err != nil {
		return nil, err
	}
	if err := checkOpenFiles(n); err != nil {
		return nil, err
	}
	srcs, err := sourceAddrs(u.Host, n)
	if err != nil {
		return nil, err
	}
	f := &fleet{conns: make([]*wsConn, n), connectLat: newHist(64)}
	var next atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range max(1, min(concurrency, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				mu.Lock()
				stop := f.failures >= maxFailures
				mu.Unlock()
				if stop {
					return
				}
				d := &net.Dialer{Timeout: 10 * time.Second}
				if len(srcs) > 0 {
					d.LocalAddr = srcs[i%len(srcs)]
				}
				ch := channelOf(i)
				sub := []byte(`{"id":1,"op":"subscribe","channel":"` + ch + `"}`)
				cu := u
				if t.Rooms && !echo {
					withRoom := *u
					cu = &withRoom
					cu.RawQuery = url.Values{"room": {ch}}.Encode()
				}
				start := time.Now()
				c, err := connectOne(ctx, d, cu, t, connectCmd(t, i), sub)
				if err != nil {
					mu.Lock()
					f.failures++
					if f.firstErr == nil {
						f.firstErr, f.limit = err, classify(err)
					}
					mu.Unlock()
					continue
				}
				f.connectLat.record(w, time.Since(start))
				mu.Lock()
				f.conns[i] = c
				f.open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return f, nil
}

// connectCmd returns client i's connect command, or nil when t sends none.
func connectCmd(t Target, i int) []byte {
	switch {
	case t.Token != nil:
		return fmt.Appendf(nil, `{"id":2,"op":"connect","token":%q}`, t.Token(i))
	case t.Connect:
		return []byte(`{"id":2,"op":"connect"}`)
	}
	return nil
}

// connectOne opens one connection to u, sends connect (when not nil) and
// subscribes it when t asks.
func connectOne(ctx context.Context, d *net.Dialer, u *url.URL, t Target, connect, sub []byte) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := dialWS(ctx, d, u, t.Compress)
	if err != nil {
		return nil, err
	}
	if !t.Subscribe {
		return c, nil
	}
	deadline, _ := ctx.Deadline()
	_ = c.nc.SetDeadline(deadline)
	if connect != nil { // its reply comes before the subscribe's: an error there fails the subscribe too
		if err := c.writeMessage(opText, connect); err != nil {
			c.Close()
			return nil, fmt.Errorf("bench: connect: %w", err)
		}
	}
	if err := c.writeMessage(opText, sub); err != nil {
		c.Close()
		return nil, fmt.Errorf("bench: subscribe: %w", err)
	}
	for {
		_, msg, err := c.readMessage()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("bench: subscribe reply: %w", err)
		}
		if bytes.HasPrefix(msg, []byte(`{"id":1,`)) {
			if bytes.Contains(msg, []byte(`"error"`)) {
				c.Close()
				return nil, fmt.Errorf("bench: subscribe refused: %s", msg)
			}
			c.reply = bytes.Clone(msg)
			break
		}
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, nil
}

// complete says whether every connection asked for is open.
func (f *fleet) complete() bool { return f.open == len(f.conns) }

// failure describes why the fleet is not complete.
func (f *fleet) failure() error {
	if f.complete() {
		return nil
	}
	return fmt.Errorf("%w: %d of %d connections failed (%s); first error: %v",
		ErrLimit, len(f.conns)-f.open, len(f.conns), f.limit, f.firstErr)
}

// read moves every open connection to a poller that calls handle with each
// message (valid only during the call; calls for one connection are never
// concurrent) until the connection or the fleet closes.
func (f *fleet) read(handle func(i int, msg []byte)) error {
	p, err := newPollReader(2, handle)
	if err != nil {
		return err
	}
	f.poll = p
	for i, c := range f.conns {
		if c == nil {
			continue
		}
		if err := p.add(i, c); err != nil {
			p.fail(err)
		}
	}
	return nil
}

// close closes every connection and waits for the readers.
func (f *fleet) close() {
	f.closeOnce.Do(func() {
		if f.poll != nil {
			f.poll.stop()
		}
		for _, c := range f.conns {
			if c != nil {
				c.Close()
			}
		}
	})
}

// lost returns an error when connections dropped while reading.
func (f *fleet) lost() error {
	if f.poll == nil {
		return nil
	}
	return f.poll.lost()
}

// openSubscribers opens n subscribers of channel for the publishing
// benchmarks. It fails when not one of them opened.
func openSubscribers(ctx context.Context, t Target, n, concurrency int, channel string) (*fleet, error) {
	f, err := openFleet(ctx, t, n, concurrency, channel, false)
	if err != nil {
		return nil, err
	}
	if f.open == 0 {
		err := f.failure()
		f.close()
		return nil, err
	}
	return f, nil
}

// publisherClient returns the HTTP client the publishing benchmarks publish
// and read the server's metrics with.
func publisherClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
}
