package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
)

// publishStream is one ServerAPI/PublishStream stream: messages go out as
// they are sent, and a goroutine reads the answers and counts the refusals.
type publishStream struct {
	cc      *grpc.ClientConn
	stream  tetherv1.ServerAPI_PublishStreamClient
	cancel  context.CancelFunc
	refused atomic.Int64
	done    chan struct{}
	err     error // why the answers stopped early; read after done
	once    sync.Once
	buf     []byte
}

// openPublishStream opens a publish stream to t's gRPC server API at addr.
func openPublishStream(ctx context.Context, t Target, addr string) (*publishStream, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("bench: grpc %s: %w", addr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	if t.APIKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+t.APIKey)
	}
	stream, err := tetherv1.NewServerAPIClient(cc).PublishStream(ctx, grpc.WaitForReady(true)) // the server may still be starting its gRPC listener
	if err != nil {
		cancel()
		cc.Close()
		return nil, fmt.Errorf("bench: publish stream: %w", err)
	}
	ps := &publishStream{cc: cc, stream: stream, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ps.done)
		for {
			res, err := stream.Recv()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					ps.err = err
				}
				return
			}
			if res.GetError() != nil {
				ps.refused.Add(1)
			}
		}
	}()
	return ps, nil
}

// send publishes message seq to channel, stamped with sched. It is not safe
// for concurrent use.
func (ps *publishStream) send(seq int, channel string, sched time.Time, payload int) error {
	ps.buf = appendData(ps.buf[:0], seq, sched, payload)
	return ps.stream.Send(&tetherv1.PublishStreamRequest{Id: uint64(seq), Channel: channel, Data: string(ps.buf)})
}

// errors returns the messages the server refused, once every answer is in
// (or after 10s).
func (ps *publishStream) errors() int {
	ps.once.Do(func() { _ = ps.stream.CloseSend() })
	select {
	case <-ps.done:
	case <-time.After(10 * time.Second):
	}
	n := int(ps.refused.Load())
	if ps.err != nil {
		n++
	}
	return n
}

func (ps *publishStream) close() {
	ps.once.Do(func() { _ = ps.stream.CloseSend() })
	ps.cancel()
	<-ps.done
	ps.cc.Close()
}
