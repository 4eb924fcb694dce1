package memory_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
)

func TestBrokerContract(t *testing.T) {
	backendtest.TestBroker(t, backendtest.BrokerSuite{
		New: func(*testing.T) backend.Broker { return memory.NewBroker() },
	})
}

// TestBrokerMemory checks what the memory broker promises beyond the
// contract: one handler, delivery on the publishing goroutine, and an
// Unsubscribe that takes effect at once.
func TestBrokerMemory(t *testing.T) {
	b := memory.NewBroker()
	var got []uint64
	if err := b.Register(func(p *protocol.Publication) { got = append(got, p.Offset) }); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := b.Register(func(*protocol.Publication) {}); err == nil {
		t.Fatal("a second Register succeeded")
	}
	ctx := context.Background()
	publish := func(offset uint64) {
		t.Helper()
		if err := b.Publish(ctx, &protocol.Publication{Channel: "ch", Offset: offset}); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	publish(1) // no interest yet
	if err := b.Subscribe(ctx, "ch"); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	publish(2) // delivered before Publish returns: got is read without a lock
	if err := b.Unsubscribe(ctx, "ch"); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	publish(3)
	if !slices.Equal(got, []uint64{2}) {
		t.Fatalf("handler received offsets %v, want [2]", got)
	}
}
