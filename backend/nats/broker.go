package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

var (
	_ backend.Broker     = (*Broker)(nil)
	_ backend.PushBroker = (*Broker)(nil)
	_ backend.Cluster    = (*Broker)(nil)
	_ backend.Closer     = (*Broker)(nil)
	_ backend.Checker    = (*Broker)(nil)
)

// Broker is the broker on core NATS, from Backend.Broker. A channel's
// publications travel on their own subject; a node subscribes to it while it
// has interest (and Config.Linger after), so a publication crosses NATS once
// per interested node, already encoded.
//
// The subscriptions deliver on a fixed set of goroutines, each channel on
// one of them (dispatcher): a channel's handler calls never overlap, and a
// gap filled from the stream holds up the channels of its shard only.
//
// Pushes (backend.PushBroker) travel on the publications' subject, marked
// by a header (hdrPush), outside the stream and without positions: the
// channel's one subscription carries both, and a push crosses NATS once per
// interested node.
//
// Lock order: Broker.mu, then a dispatcher shard's lock; the handlers are
// called with neither held.
type Broker struct {
	b          *Backend
	handle     func(*protocol.Publication)
	handlePush func(channel string, payload []byte)
	disp       dispatcher

	mu     sync.Mutex // guards subs and closed
	subs   map[string]*interest
	closed bool
}

// interest is this node's subscription to one channel.
type interest struct {
	channel string
	subject string // the broker subject
	sub     *natsgo.Subscription
	ready   chan struct{} // closed once lastSeq is set
	// lingering and gen are guarded by Broker.mu: a linger timer removes the
	// subscription only if nothing subscribed again since it was set.
	lingering bool
	gen       uint64
	timer     *time.Timer
	// lastSeq is the stream sequence of the last publication delivered (or
	// the subject's last when the subscription began), lastEpoch its epoch.
	// Owned by the channel's dispatcher goroutine once ready is closed.
	lastSeq   uint64
	lastEpoch string
	// touched is when the channel last had a message, as far as this node
	// knows (unix nanoseconds), for the keeper (keep.go).
	touched atomic.Int64
}

// interests returns the channels this node has subscribers to, lingering
// ones left out.
func (br *Broker) interests() []*interest {
	br.mu.Lock()
	defer br.mu.Unlock()
	out := make([]*interest, 0, len(br.subs))
	for _, in := range br.subs {
		if !in.lingering {
			out = append(out, in)
		}
	}
	return out
}

// Register implements backend.Broker. It can be called once.
func (br *Broker) Register(handle func(*protocol.Publication)) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.handle != nil {
		return errors.New("nats: broker handler already registered")
	}
	br.handle = handle
	return nil
}

// Publish implements backend.Broker. A publication that History.Append of
// the same Backend positioned carries its stream sequences, by which
// receivers order it.
func (br *Broker) Publish(ctx context.Context, pub *protocol.Publication) error {
	b := br.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	data, err := pub.Encode()
	if err != nil {
		return err
	}
	msg := &natsgo.Msg{Subject: b.brokerSubject(pub.Channel), Data: data}
	if h, ok := b.lastHead(pub.Channel); ok && h.seq != 0 && h.epoch == pub.Epoch && h.offset == pub.Offset {
		msg.Header = natsgo.Header{
			hdrSeq:   []string{strconv.FormatUint(h.seq, 10)},
			hdrPrev:  []string{strconv.FormatUint(h.prev, 10)},
			hdrEpoch: []string{h.epoch},
		}
	}
	if err := b.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("nats: publish: %w", err)
	}
	return nil
}

// Subscribe implements backend.Broker. It returns once the NATS server this
// node is connected to has the subscription; servers further away learn of
// it shortly after, and a publication they drop meanwhile is read from the
// stream when the channel's next one arrives.
func (br *Broker) Subscribe(ctx context.Context, channel string) error {
	b := br.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	br.mu.Lock()
	if br.closed {
		br.mu.Unlock()
		return backend.ErrClosed
	}
	if in := br.subs[channel]; in != nil {
		in.lingering = false
		in.gen++
		if in.timer != nil {
			in.timer.Stop()
		}
		br.mu.Unlock()
		return nil
	}
	in := &interest{channel: channel, subject: b.brokerSubject(channel), ready: make(chan struct{})}
	sub, err := b.nc.ChanSubscribe(in.subject, br.disp.add(in.subject, in))
	if err != nil {
		br.mu.Unlock()
		br.disp.remove(in.subject, in)
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	in.sub = sub
	br.subs[channel] = in
	br.mu.Unlock()

	// Where the stream stands now: publications up to it are history.
	ctx, cancel := b.bound(ctx)
	defer cancel()
	last, err := b.last(ctx, b.historySubject(channel))
	if err == nil {
		err = b.nc.FlushWithContext(ctx)
	}
	if err != nil {
		br.drop(in)
		return fmt.Errorf("nats: subscribe: %w", err)
	}
	in.lastSeq, in.lastEpoch = last.seq, last.epoch
	if last.at.IsZero() {
		touch(&in.touched)
	} else {
		in.touched.Store(last.at.UnixNano())
	}
	close(in.ready)
	return nil
}

// drop removes in and its subscription.
func (br *Broker) drop(in *interest) {
	br.mu.Lock()
	if br.subs[in.channel] == in {
		delete(br.subs, in.channel)
	}
	br.mu.Unlock()
	br.unsubscribe(in)
	select {
	case <-in.ready:
	default:
		close(in.ready)
	}
}

// Unsubscribe implements backend.Broker: the subscription goes after
// Config.Linger unless the node subscribes again before.
func (br *Broker) Unsubscribe(_ context.Context, channel string) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	in := br.subs[channel]
	if in == nil || in.lingering {
		return nil
	}
	if br.b.cfg.Linger < 0 {
		delete(br.subs, channel)
		br.unsubscribe(in)
		return nil
	}
	in.lingering = true
	in.gen++
	gen := in.gen
	in.timer = time.AfterFunc(br.b.cfg.Linger, func() {
		br.mu.Lock()
		defer br.mu.Unlock()
		if in.lingering && in.gen == gen && br.subs[channel] == in {
			delete(br.subs, channel)
			br.unsubscribe(in)
		}
	})
	return nil
}

// receive handles one message of in's subscription, on its goroutine.
func (br *Broker) receive(in *interest, m *natsgo.Msg) {
	if m.Header.Get(hdrPush) != "" { // no position, no order with publications
		if br.handlePush != nil {
			br.handlePush(in.channel, m.Data)
		}
		return
	}
	<-in.ready
	touch(&in.touched)
	seqHdr := m.Header.Get(hdrSeq)
	if seqHdr == "" { // not positioned by this package's History: as it is
		br.deliver(m.Data)
		return
	}
	seq, err1 := strconv.ParseUint(seqHdr, 10, 64)
	prev, err2 := strconv.ParseUint(m.Header.Get(hdrPrev), 10, 64)
	if err1 != nil || err2 != nil {
		br.b.log.Warn("nats: broker message with a bad sequence", "channel", in.channel)
		return
	}
	epoch := m.Header.Get(hdrEpoch)
	switch {
	case seq <= in.lastSeq && (epoch == in.lastEpoch || in.lastEpoch == ""):
		return // delivered already, from the stream
	case seq <= in.lastSeq:
		// A new epoch below the last sequence: the stream was deleted and
		// created again, its sequences started over.
	case prev != in.lastSeq:
		br.fill(in, prev)
	}
	in.lastSeq, in.lastEpoch = seq, epoch
	br.deliver(m.Data)
}

// fill delivers the channel's publications the stream holds after the last
// one delivered up to prev, the one before a publication that arrived ahead
// of them.
func (br *Broker) fill(in *interest, prev uint64) {
	b := br.b
	if prev < in.lastSeq {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	subject := b.historySubject(in.channel)
	msgs, err := b.scan(ctx, subject, in.lastSeq+1, prev, int(min(prev-in.lastSeq, uint64(b.cfg.HistorySize)+1)))
	if n := len(msgs); err == nil && (n == 0 || msgs[n-1].seq != prev) {
		msgs, err = b.walk(ctx, subject, in.lastSeq+1, prev) // a replica behind answered
	}
	if err != nil {
		b.log.Warn("nats: filling a gap from the stream", "channel", in.channel, "err", err)
		return // the hole stays: clients see it by its offsets and recover
	}
	for _, s := range msgs {
		if s.seq <= in.lastSeq || s.seq > prev || s.marker() {
			continue
		}
		in.lastSeq, in.lastEpoch = s.seq, s.epoch
		br.deliver(s.data)
	}
}

func (br *Broker) deliver(data []byte) {
	p, err := decode(data)
	if err != nil {
		br.b.log.Warn("nats: broker message is not a publication", "err", err)
		return
	}
	br.handle(p)
}

// closeAll drops every subscription; the broker refuses calls from then on.
func (br *Broker) closeAll() {
	br.mu.Lock()
	br.closed = true
	subs := br.subs
	br.subs = make(map[string]*interest)
	br.mu.Unlock()
	for _, in := range subs {
		if in.timer != nil {
			in.timer.Stop()
		}
		br.unsubscribe(in)
	}
}

// unsubscribe ends in's subscription; messages of it still queued are
// dropped.
func (br *Broker) unsubscribe(in *interest) {
	_ = in.sub.Unsubscribe()
	br.disp.remove(in.subject, in)
}

// hdrPush marks a push on a broker subject: not a publication.
const hdrPush = "Tether-Push"

// RegisterPush implements backend.PushBroker. It can be called once.
func (br *Broker) RegisterPush(handle func(channel string, payload []byte)) error {
	br.mu.Lock()
	defer br.mu.Unlock()
	if br.handlePush != nil {
		return errors.New("nats: push handler already registered")
	}
	br.handlePush = handle
	return nil
}

// Push implements backend.PushBroker: one core NATS message on the
// channel's broker subject, marked as a push, which every node with interest
// subscribes to. It is not stored: a node that misses it (NATS lost
// meanwhile) never gets it.
func (br *Broker) Push(ctx context.Context, channel string, payload []byte) error {
	b := br.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	msg := &natsgo.Msg{Subject: b.brokerSubject(channel), Data: payload, Header: natsgo.Header{hdrPush: []string{"1"}}}
	if err := b.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("nats: push: %w", err)
	}
	return nil
}

// Check implements backend.Checker.
func (br *Broker) Check(ctx context.Context) error { return br.b.Check(ctx) }

// Close implements backend.Closer: it closes the whole Backend.
func (br *Broker) Close(ctx context.Context) error { return br.b.Close(ctx) }

// Announce implements backend.Cluster for the Backend.
func (br *Broker) Announce(describe func() backend.NodeInfo) { br.b.Announce(describe) }

// Nodes implements backend.Cluster for the Backend.
func (br *Broker) Nodes() []backend.NodeInfo { return br.b.Nodes() }
