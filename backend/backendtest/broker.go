package backendtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// BrokerSuite says how to test an implementation of backend.Broker.
type BrokerSuite struct {
	// New returns a broker of its own (its own backing system, or its own
	// namespace in a shared one), with no handler registered and no interest,
	// and registers its cleanup with t. Required. The suite closes some
	// brokers itself, before their cleanup runs.
	New func(t *testing.T) backend.Broker
	// Peer, when set, returns the broker of another node on b's backing
	// system, with no handler registered. Nil for brokers of one node (the
	// memory one): the suite then skips the tests across nodes.
	Peer func(t *testing.T, b backend.Broker) backend.Broker
}

// TestBroker runs the contract suite of backend.Broker against the brokers
// s.New returns.
//
// The suite's publications carry who published them in Epoch and their
// sequence in Offset: a broker must carry them as they are.
func TestBroker(t *testing.T, s BrokerSuite) {
	if s.New == nil {
		t.Fatal("backendtest: BrokerSuite.New is nil")
	}
	t.Run("DeliverAfterSubscribe", s.testDeliver)
	t.Run("NoInterestNoDelivery", s.testNoInterest)
	t.Run("SubscribeTwice", s.testSubscribeTwice)
	t.Run("Resubscribe", s.testResubscribe)
	t.Run("ConcurrentPublishersOneChannel", s.testConcurrentPublishers)
	t.Run("ManyChannels", s.testManyChannels)
	t.Run("Canceled", s.testBrokerCanceled)
	t.Run("Closed", s.testBrokerClosed)
	t.Run("AcrossNodes", s.testAcrossNodes)
	t.Run("Push", s.testPush) // brokers that are a backend.PushBroker
}

// recorder is a broker's handler that keeps what it receives, per channel,
// and notes calls for one channel that overlap.
type recorder struct {
	// overlapOK is set by a test that publishes to one channel concurrently
	// on one node, which a node does not do: the handler's calls may then
	// overlap.
	overlapOK bool

	mu      sync.Mutex
	got     map[string][]*protocol.Publication
	active  map[string]int // calls in progress per channel
	overlap string         // a channel whose handler ran twice at once
	signal  chan struct{}  // closed at each delivery, then replaced
}

func newRecorder() *recorder {
	return &recorder{
		got:    make(map[string][]*protocol.Publication),
		active: make(map[string]int),
		signal: make(chan struct{}),
	}
}

func (r *recorder) handle(p *protocol.Publication) {
	r.mu.Lock()
	r.active[p.Channel]++
	if r.active[p.Channel] > 1 && r.overlap == "" {
		r.overlap = p.Channel
	}
	r.mu.Unlock()
	for range 8 { // widen the window in which an overlapping call shows
		runtime.Gosched()
	}
	r.mu.Lock()
	r.active[p.Channel]--
	r.got[p.Channel] = append(r.got[p.Channel], p)
	close(r.signal)
	r.signal = make(chan struct{})
	r.mu.Unlock()
}

// wait returns channel's publications once the last one received is
// publisher's number seq.
func (r *recorder) wait(t *testing.T, channel, publisher string, seq uint64) []*protocol.Publication {
	t.Helper()
	return r.waitFor(t, channel, fmt.Sprintf("%s #%d", publisher, seq), func(got []*protocol.Publication) bool {
		n := len(got)
		return n > 0 && got[n-1].Epoch == publisher && got[n-1].Offset == seq
	})
}

// waitFor returns channel's publications once done says they are complete,
// failing the test after waitTimeout, or as soon as the handler runs twice at
// once for one channel (unless overlapOK).
func (r *recorder) waitFor(t *testing.T, channel, what string, done func([]*protocol.Publication) bool) []*protocol.Publication {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		got := append([]*protocol.Publication(nil), r.got[channel]...)
		overlap, signal := r.overlap, r.signal
		r.mu.Unlock()
		if overlap != "" && !r.overlapOK {
			t.Fatalf("the handler ran twice at once for channel %s", overlap)
		}
		if done(got) {
			return got
		}
		select {
		case <-signal:
		case <-timeout.C:
			t.Fatalf("channel %s: waited %v for %s; received %s", channel, waitTimeout, what, describe(got))
		}
	}
}

// received returns what channel received so far.
func (r *recorder) received(channel string) []*protocol.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*protocol.Publication(nil), r.got[channel]...)
}

func describe(pubs []*protocol.Publication) string {
	s := fmt.Sprintf("%d:", len(pubs))
	for i, p := range pubs {
		if i == 20 {
			return s + " ..."
		}
		s += fmt.Sprintf(" %s#%d", p.Epoch, p.Offset)
	}
	return s
}

// brokerCase is one test's broker and handler.
type brokerCase struct {
	t   *testing.T
	ctx context.Context
	b   backend.Broker
	rec *recorder
}

func (s BrokerSuite) open(t *testing.T) *brokerCase {
	t.Helper()
	b := s.New(t)
	if b == nil {
		t.Fatal("BrokerSuite.New returned nil")
	}
	return register(t, b)
}

func register(t *testing.T, b backend.Broker) *brokerCase {
	t.Helper()
	c := &brokerCase{t: t, ctx: testContext(t), b: b, rec: newRecorder()}
	if err := b.Register(c.rec.handle); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return c
}

func (c *brokerCase) subscribe(channel string) {
	c.t.Helper()
	if err := c.b.Subscribe(c.ctx, channel); err != nil {
		c.t.Fatalf("Subscribe(%s): %v", channel, err)
	}
}

// brokerPub is publisher's publication number seq to channel, encoded as a
// node encodes it before Publish.
func brokerPub(channel, publisher string, seq uint64) *protocol.Publication {
	p := &protocol.Publication{
		Channel: channel, Epoch: publisher, Offset: seq,
		Data: pubData(int(seq)), From: &protocol.ClientInfo{Client: "c-" + publisher, User: "u"},
	}
	if _, err := p.Encode(); err != nil {
		panic(err) // a literal that cannot fail to encode
	}
	return p
}

// publish publishes and checks Publish left the publication as it was.
func (c *brokerCase) publish(channel, publisher string, seq uint64) {
	c.t.Helper()
	if err := publishOne(c.ctx, c.b, channel, publisher, seq); err != nil {
		c.t.Fatal(err)
	}
}

func publishOne(ctx context.Context, b backend.Broker, channel, publisher string, seq uint64) error {
	p := brokerPub(channel, publisher, seq)
	if err := b.Publish(ctx, p); err != nil {
		return fmt.Errorf("Publish(%s %s#%d): %w", channel, publisher, seq, err)
	}
	if err := samePub(p, brokerPub(channel, publisher, seq)); err != nil {
		return fmt.Errorf("Publish modified its publication: %w", err)
	}
	return nil
}

// samePub says whether got carries what want does.
func samePub(got, want *protocol.Publication) error {
	if got.Channel != want.Channel || got.Epoch != want.Epoch || got.Offset != want.Offset ||
		string(got.Data) != string(want.Data) || (got.From == nil) != (want.From == nil) ||
		(got.From != nil && (got.From.Client != want.From.Client || got.From.User != want.From.User || string(got.From.Info) != string(want.From.Info))) {
		return fmt.Errorf("publication {%s %s %d %s %v}, want {%s %s %d %s %v}",
			got.Channel, got.Epoch, got.Offset, got.Data, got.From, want.Channel, want.Epoch, want.Offset, want.Data, want.From)
	}
	return nil
}

// checkSequence checks pubs are publisher's numbers from..to, in order, each
// as it was published.
func checkSequence(pubs []*protocol.Publication, channel, publisher string, from, to uint64) error {
	want := from
	for _, p := range pubs {
		if p.Epoch != publisher {
			continue
		}
		if p.Offset != want || want > to {
			return fmt.Errorf("%s received %s#%d, want #%d of %d..%d", channel, publisher, p.Offset, want, from, to)
		}
		if err := samePub(p, brokerPub(channel, publisher, p.Offset)); err != nil {
			return err
		}
		want++
	}
	if want != to+1 {
		return fmt.Errorf("%s received %s up to #%d, want up to #%d", channel, publisher, want-1, to)
	}
	return nil
}

func (s BrokerSuite) testDeliver(t *testing.T) {
	c := s.open(t)
	c.subscribe("ch")
	for i := uint64(1); i <= 10; i++ {
		c.publish("ch", "p", i)
	}
	got := c.rec.wait(t, "ch", "p", 10)
	if err := checkSequence(got, "ch", "p", 1, 10); err != nil {
		t.Fatal(err)
	}
	c.publish("ch", "fence", 1) // a duplicate of the ten would come before it
	if got := c.rec.wait(t, "ch", "fence", 1); len(got) != 11 {
		t.Fatalf("received %s, want each of 10 publications once, then the fence", describe(got))
	}
}

func (s BrokerSuite) testNoInterest(t *testing.T) {
	c := s.open(t)
	c.subscribe("subscribed")
	c.publish("never-subscribed", "p", 1)
	c.publish("subscribed", "fence", 1)
	c.rec.wait(t, "subscribed", "fence", 1)
	if got := c.rec.received("never-subscribed"); len(got) != 0 {
		t.Fatalf("a channel never subscribed received %s", describe(got))
	}
}

func (s BrokerSuite) testSubscribeTwice(t *testing.T) {
	c := s.open(t)
	c.subscribe("ch")
	c.subscribe("ch")
	for i := uint64(1); i <= 3; i++ {
		c.publish("ch", "p", i)
	}
	c.publish("ch", "fence", 1)
	got := c.rec.wait(t, "ch", "fence", 1)
	if err := checkSequence(got, "ch", "p", 1, 3); err != nil || len(got) != 4 {
		t.Fatalf("subscribed twice: received %s (%v), want each publication once", describe(got), err)
	}
}

// testResubscribe withdraws interest and declares it again: what was
// published in between may or may not come (the broker may linger), what was
// published after comes once, and nothing comes twice or out of order.
func (s BrokerSuite) testResubscribe(t *testing.T) {
	c := s.open(t)
	c.subscribe("ch")
	c.publish("ch", "p", 1)
	c.rec.wait(t, "ch", "p", 1)
	if err := c.b.Unsubscribe(c.ctx, "ch"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	c.publish("ch", "p", 2)
	c.subscribe("ch")
	for i := uint64(3); i <= 5; i++ {
		c.publish("ch", "p", i)
	}
	got := c.rec.wait(t, "ch", "p", 5)
	if len(got) == 4 { // #2 did not come
		got = slices.Insert(got, 1, brokerPub("ch", "p", 2))
	}
	if err := checkSequence(got, "ch", "p", 1, 5); err != nil || len(got) != 5 {
		t.Fatalf("received %s (%v), want #1..#5 once each, #2 perhaps not", describe(got), err)
	}
}

// testConcurrentPublishers publishes to one channel from several goroutines,
// each publishing in sequence: each publication comes once, and each
// publisher's in the order it published them. A node serialises its Publish
// calls per channel, and a broker may rely on it to call the handler once at a
// time per channel: this test does not check that.
func (s BrokerSuite) testConcurrentPublishers(t *testing.T) {
	const publishers, each = 4, 100
	c := s.open(t)
	c.rec.overlapOK = true
	c.subscribe("ch")
	publishAll(t, c.ctx, []*brokerCase{c}, publishers, each, "ch")
	waitAll(t, c.rec, "ch", publishers, each)
}

// publishAll publishes numbers 1..each from each of publishers goroutines to
// channel, spreading the publishers over nodes.
func publishAll(t *testing.T, ctx context.Context, nodes []*brokerCase, publishers, each int, channel string) {
	t.Helper()
	errs := make(chan error, publishers)
	start := make(chan struct{}) // the publishers start together
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			b := nodes[p%len(nodes)].b
			for i := uint64(1); i <= uint64(each); i++ {
				if err := publishOne(ctx, b, channel, fmt.Sprint("p", p), i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// waitAll waits until rec received the last publication of every publisher of
// publishAll, and checks each came once and in its publisher's order.
func waitAll(t *testing.T, rec *recorder, channel string, publishers, each int) {
	t.Helper()
	got := rec.waitFor(t, channel, "every publisher's last publication", func(got []*protocol.Publication) bool {
		last := make(map[string]bool)
		for _, p := range got {
			if p.Offset == uint64(each) {
				last[p.Epoch] = true
			}
		}
		return len(last) == publishers
	})
	for p := range publishers {
		if err := checkSequence(got, channel, fmt.Sprint("p", p), 1, uint64(each)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != publishers*each {
		t.Fatalf("%s: received %d publications, want %d", channel, len(got), publishers*each)
	}
}

// testManyChannels publishes to many channels at once, one publisher per
// channel: each channel receives its own publications, in order, with its
// handler never running twice at once.
func (s BrokerSuite) testManyChannels(t *testing.T) {
	const channels, each = 32, 20
	c := s.open(t)
	for i := range channels {
		c.subscribe(fmt.Sprint("ch", i))
	}
	errs := make(chan error, channels)
	var wg sync.WaitGroup
	for i := range channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := uint64(1); n <= each; n++ {
				if err := publishOne(c.ctx, c.b, fmt.Sprint("ch", i), "p", n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range channels {
		ch := fmt.Sprint("ch", i)
		got := c.rec.wait(t, ch, "p", each)
		if err := checkSequence(got, ch, "p", 1, each); err != nil || len(got) != each {
			t.Fatalf("%s: received %s (%v), want #1..#%d once each", ch, describe(got), err, each)
		}
	}
}

func (s BrokerSuite) testBrokerCanceled(t *testing.T) {
	c := s.open(t)
	if err := c.b.Subscribe(canceled(), "ch"); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a cancelled context: %v, want context.Canceled", err)
	}
	c.subscribe("ch")
	// A Publish that fails may or may not have been delivered: only its error
	// is checked.
	if err := c.b.Publish(canceled(), brokerPub("ch", "p", 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v, want context.Canceled", err)
	}
}

func (s BrokerSuite) testBrokerClosed(t *testing.T) {
	c := s.open(t)
	closer, ok := c.b.(backend.Closer)
	if !ok {
		t.Skip("the broker is not a backend.Closer")
	}
	c.subscribe("ch")
	if err := closer.Close(c.ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.b.Publish(c.ctx, brokerPub("ch", "p", 1)); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Publish after Close: %v, want backend.ErrClosed", err)
	}
	if err := c.b.Subscribe(c.ctx, "other"); !errors.Is(err, backend.ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want backend.ErrClosed", err)
	}
}

// testAcrossNodes runs two nodes on one backing system: a node receives what
// the other publishes when it has interest, and nothing when it has none; with
// a publisher on each node, both receive each publisher's publications once,
// in order, with the handler running once at a time.
func (s BrokerSuite) testAcrossNodes(t *testing.T) {
	if s.Peer == nil {
		t.Skip("BrokerSuite.Peer is nil: a broker of one node")
	}
	a := s.open(t)
	peer := s.Peer(t, a.b)
	if peer == nil {
		t.Fatal("BrokerSuite.Peer returned nil")
	}
	b := register(t, peer)
	b.subscribe("ch")
	for i := uint64(1); i <= 10; i++ {
		a.publish("ch", "a", i)
	}
	if err := checkSequence(b.rec.wait(t, "ch", "a", 10), "ch", "a", 1, 10); err != nil {
		t.Fatal(err)
	}
	a.subscribe("fence")
	b.publish("fence", "b", 1)
	a.rec.wait(t, "fence", "b", 1)
	if got := a.rec.received("ch"); len(got) != 0 {
		t.Fatalf("a node without interest received %s", describe(got))
	}

	const publishers, each = 2, 100 // one per node
	a.subscribe("shared")
	b.subscribe("shared")
	publishAll(t, a.ctx, []*brokerCase{a, b}, publishers, each, "shared")
	waitAll(t, a.rec, "shared", publishers, each)
	waitAll(t, b.rec, "shared", publishers, each)
}
