package grpcconn

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/conns"
	"github.com/tetherhq/tether/internal/hub"
	"github.com/tetherhq/tether/internal/session"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// stuckStream is a Connect stream whose client neither sends nor reads: Recv
// waits for the stream's end and Send blocks, as on HTTP/2 flow control.
type stuckStream struct {
	grpc.ServerStream // unused methods
	ctx               context.Context
	receiving         chan struct{} // gets a value when Recv is first called
}

func (s *stuckStream) Context() context.Context { return s.ctx }

func (s *stuckStream) Recv() (*tetherv1.ClientMessage, error) {
	select {
	case s.receiving <- struct{}{}:
	default:
	}
	<-s.ctx.Done()
	return nil, s.ctx.Err()
}

func (s *stuckStream) Send(*tetherv1.ServerMessage) error {
	<-s.ctx.Done()
	return s.ctx.Err()
}

func newServer(t *testing.T, reg *conns.Registry) *Server {
	t.Helper()
	hist := memory.NewHistory(memory.HistoryConfig{})
	h, err := hub.New(hub.Config{Broker: memory.NewBroker(), History: hist})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = hist.Close(context.Background())
	})
	log := slog.New(slog.DiscardHandler)
	return New(Config{
		Sessions:     session.NewManager(session.Config{MaxSubscriptions: 1, MaxChannelLength: 16}, h, log, "g"),
		Conns:        reg,
		MaxOutbound:  1 << 20,
		CloseTimeout: time.Minute, // longer than the test: only Drop can end the stuck stream
		Logger:       log,
	})
}

// TestAdmissionAndDrop: past the registry's limit a stream ends with
// RESOURCE_EXHAUSTED, while draining with UNAVAILABLE; a stream whose final
// message cannot leave is ended by Drop when the drain's time runs out.
func TestAdmissionAndDrop(t *testing.T) {
	reg := conns.New(conns.Config{MaxConns: 1})
	srv := newServer(t, reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	stuck := &stuckStream{ctx: ctx, receiving: make(chan struct{}, 1)}
	ended := make(chan error, 1)
	go func() { ended <- srv.Connect(stuck) }()
	<-stuck.receiving // admitted and running

	if err := srv.Connect(&stuckStream{ctx: ctx}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second stream past the limit: %v, want RESOURCE_EXHAUSTED", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer dcancel()
	if err := reg.Shutdown(dctx, protocol.DisconnectShutdown); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain: %v, want DeadlineExceeded (the final message cannot leave)", err)
	}
	select {
	case err := <-ended:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("dropped stream ended with %v, want UNAVAILABLE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dropped stream's handler did not return")
	}
	if srv.Len() != 0 || reg.Len() != 0 {
		t.Fatalf("after the drop: %d streams, %d in the registry", srv.Len(), reg.Len())
	}
	if err := srv.Connect(&stuckStream{ctx: ctx}); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream while draining: %v, want UNAVAILABLE", err)
	}
}
