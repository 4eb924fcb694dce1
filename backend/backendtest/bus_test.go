package backendtest_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/protocol"
)

// bus is a broker system of several nodes in one process, shaped like NATS:
// Publish orders one channel's publications under the bus's lock and queues
// them to each node with interest, whose one goroutine calls its handler. A
// direct bus calls the handlers on the publishing goroutine instead, so a
// node's handler can run twice at once for one channel: a bug.
type bus struct {
	direct bool
	mu     sync.Mutex // guards every node's interest
	nodes  []*busNode
}

type busNode struct {
	bus      *bus
	handle   func(*protocol.Publication)
	interest map[string]bool
	queue    chan *protocol.Publication
	done     chan struct{}
}

var _ backend.Broker = (*busNode)(nil)

// node adds a node to the bus; t's cleanup stops it.
func (b *bus) node(t *testing.T) *busNode {
	n := &busNode{bus: b, interest: make(map[string]bool), queue: make(chan *protocol.Publication, 4096), done: make(chan struct{})}
	b.mu.Lock()
	b.nodes = append(b.nodes, n)
	b.mu.Unlock()
	t.Cleanup(func() {
		close(n.queue)
		<-n.done
	})
	return n
}

func (n *busNode) Register(h func(*protocol.Publication)) error {
	n.handle = h
	go func() {
		defer close(n.done)
		for p := range n.queue {
			n.handle(p)
		}
	}()
	return nil
}

func (n *busNode) Publish(ctx context.Context, p *protocol.Publication) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var direct []*busNode
	n.bus.mu.Lock()
	for _, to := range n.bus.nodes {
		switch {
		case !to.interest[p.Channel]:
		case n.bus.direct:
			direct = append(direct, to)
		default:
			to.queue <- p
		}
	}
	n.bus.mu.Unlock()
	for _, to := range direct {
		to.handle(p)
	}
	return nil
}

func (n *busNode) Subscribe(ctx context.Context, channel string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.bus.mu.Lock()
	n.interest[channel] = true
	n.bus.mu.Unlock()
	return nil
}

func (n *busNode) Unsubscribe(_ context.Context, channel string) error {
	n.bus.mu.Lock()
	delete(n.interest, channel)
	n.bus.mu.Unlock()
	return nil
}

func busSuite(direct bool) backendtest.BrokerSuite {
	return backendtest.BrokerSuite{
		New: func(t *testing.T) backend.Broker { return (&bus{direct: direct}).node(t) },
		Peer: func(t *testing.T, b backend.Broker) backend.Broker {
			return b.(*busNode).bus.node(t)
		},
	}
}

// TestBrokerSuiteAcrossNodes runs the broker suite on a bus of several nodes,
// so that the tests across nodes are themselves tested.
func TestBrokerSuiteAcrossNodes(t *testing.T) {
	backendtest.TestBroker(t, busSuite(false))
}
