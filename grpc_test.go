package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// rawCodec sends bytes as they are, whatever the method expects: a way to
// put garbage on a stream.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("rawCodec: %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func TestGRPCStreamBadInput(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	tests := []struct {
		name string
		json string
		code string
	}{
		{"invalid json", `{nope`, protocol.ErrBadRequest},
		{"invalid utf-8", "\xff\xfe", protocol.ErrBadRequest},
		{"empty message", ``, protocol.ErrBadRequest},
		{"unknown op", `{"id":7,"op":"fly"}`, protocol.ErrUnknownOp},
		{"wrong field type", `{"id":8,"op":"subscribe","channel":5}`, protocol.ErrBadRequest},
		{"bad channel", `{"id":9,"op":"subscribe","channel":"a b"}`, protocol.ErrInvalidChannel},
	}
	c := e.dialGRPC()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.w.write([]byte(tt.json)); err != nil {
				t.Fatal(err)
			}
			m := c.read()
			if m.Error == nil || m.Error.Code != tt.code {
				t.Fatalf("got %+v, want error %s", m, tt.code)
			}
			// The stream is still usable.
			if r := c.call(protocol.Command{Op: protocol.OpPing}); r.Error != nil {
				t.Fatalf("ping: %+v", r)
			}
		})
	}
}

func TestGRPCStreamGarbage(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	cc := e.grpcConn()
	tooBig, err := proto.Marshal(&tetherv1.ClientMessage{Json: make([]byte, 70_000)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload []byte
		// reply: the stream answers with this error code and stays open;
		// empty: the stream ends with the gRPC status end.
		reply string
		end   codes.Code
	}{
		// Unknown fields are skipped by protobuf: an empty command.
		{"unknown field", []byte{0xa8, 0x06, 0x01}, protocol.ErrBadRequest, codes.OK},
		{"not protobuf", []byte{0xff, 0xff, 0xff, 0xff}, "", codes.Internal},
		{"truncated field", []byte{0x0a, 0x10, 'x'}, "", codes.Internal},
		{"over the size limit", tooBig, "", codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			desc := &grpc.StreamDesc{StreamName: "Connect", ServerStreams: true, ClientStreams: true}
			stream, err := cc.NewStream(ctx, desc, "/tether.v1.Tether/Connect", grpc.ForceCodec(rawCodec{}))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.SendMsg(tt.payload); err != nil {
				t.Fatal(err)
			}
			var reply []byte
			err = stream.RecvMsg(&reply)
			if tt.reply == "" {
				if err == nil {
					t.Fatalf("got %x, want the stream to fail", reply)
				}
				if c := status.Code(err); c != tt.end {
					t.Fatalf("stream ended with %v, want %v", err, tt.end)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var msg tetherv1.ServerMessage
			if err := proto.Unmarshal(reply, &msg); err != nil {
				t.Fatal(err)
			}
			var m message
			if err := json.Unmarshal(msg.GetJson(), &m); err != nil || m.Error == nil || m.Error.Code != tt.reply {
				t.Fatalf("reply %s, want error %s", msg.GetJson(), tt.reply)
			}
		})
	}
	// Others are still served.
	a, b := e.dialGRPC(), e.dialGRPC()
	a.subscribe("after", nil)
	b.call(protocol.Command{Op: protocol.OpPublish, Channel: "after", Data: json.RawMessage(`1`)})
	if m := a.untilPub(); m.Offset != 1 {
		t.Fatalf("got %+v", m)
	}
}

func TestGRPCServerAPIAuth(t *testing.T) {
	cfg := tethertest.Config()
	cfg.APIKey = "s3cret"
	e := startEnv(t, cfg, false)
	api := tetherv1.NewServerAPIClient(e.grpcConn())
	tests := []struct {
		name string
		md   []string
		code codes.Code
	}{
		{"missing key", nil, codes.Unauthenticated},
		{"wrong key", []string{"authorization", "Bearer nope"}, codes.Unauthenticated},
		{"no bearer", []string{"authorization", "s3cret"}, codes.Unauthenticated},
		{"right key", []string{"authorization", "Bearer s3cret"}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if tt.md != nil {
				ctx = metadata.AppendToOutgoingContext(ctx, tt.md...)
			}
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "news", Data: `1`})
			if status.Code(err) != tt.code {
				t.Fatalf("Publish: %v, want %v", err, tt.code)
			}
			_, err = api.Info(ctx, &tetherv1.InfoRequest{})
			if status.Code(err) != tt.code {
				t.Fatalf("Info: %v, want %v", err, tt.code)
			}
		})
	}
	// Health and the client stream need no key.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if res, err := healthpb.NewHealthClient(e.grpcConn()).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", res, err)
	}
	e.dialGRPC().subscribe("news", nil)
}

func TestGRPCServerAPIBadRequests(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	api := tetherv1.NewServerAPIClient(e.grpcConn())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tests := []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"publish without data", func() error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a"})
			return err
		}, codes.InvalidArgument},
		{"publish data not json", func() error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: "{"})
			return err
		}, codes.InvalidArgument},
		{"publish bad channel", func() error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "", Data: "1"})
			return err
		}, codes.InvalidArgument},
		{"broadcast no channels", func() error {
			_, err := api.Broadcast(ctx, &tetherv1.BroadcastRequest{Data: "1"})
			return err
		}, codes.InvalidArgument},
		{"history negative limit", func() error {
			_, err := api.History(ctx, &tetherv1.HistoryRequest{Channel: "a", Limit: -1})
			return err
		}, codes.InvalidArgument},
		{"disconnect unknown client", func() error {
			_, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{Client: "nobody"})
			return err
		}, codes.NotFound},
		{"disconnect no client", func() error {
			_, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); status.Code(err) != tt.code {
				t.Fatalf("got %v, want %v", err, tt.code)
			}
		})
	}
}

func TestGRPCSlowConsumer(t *testing.T) {
	cfg := tethertest.Config()
	cfg.MaxMessageSize = 8 << 10
	cfg.MaxOutbound = 256 << 10
	e := startEnv(t, cfg, false)
	const channel = "firehose"
	// The slow stream is subscribed and never read; its messages pile up in
	// the test's receive channel only as far as HTTP/2 flow control lets them.
	slowCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := tetherv1.NewTetherClient(e.grpcConn()).Connect(slowCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Send(&tetherv1.ClientMessage{Json: []byte(`{"id":1,"op":"subscribe","channel":"` + channel + `"}`)}); err != nil {
		t.Fatal(err)
	}
	fast := e.dialGRPC()
	fast.subscribe(channel, nil)
	waitFor(t, "both subscriptions", func() bool { return e.n.Info().Subscriptions == 2 })
	payload := json.RawMessage(`"` + strings.Repeat("p", 32<<10) + `"`)
	const maxPubs = 2000
	for n := uint64(1); e.n.Info().SlowConsumers == 0; n++ {
		if n > maxPubs {
			t.Fatalf("no slow consumer after %d publications of 32 KB", maxPubs)
		}
		if _, err := e.n.Publish(context.Background(), channel, payload); err != nil {
			t.Fatal(err)
		}
		if m := fast.untilPub(); m.Offset != n {
			t.Fatalf("fast stream: offset %d, want %d", m.Offset, n)
		}
	}
	// The slow stream ends: it gets what was sent, maybe the disconnect
	// push, then UNAVAILABLE (reconnect).
	var last error
	for {
		msg, err := slow.Recv()
		if err != nil {
			last = err
			break
		}
		var m message
		if err := json.Unmarshal(msg.GetJson(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Op == protocol.PushDisconnect && m.Code != protocol.CloseSlowConsumer {
			t.Fatalf("slow stream: disconnect %+v, want code %d", m, protocol.CloseSlowConsumer)
		}
	}
	if status.Code(last) != codes.Unavailable {
		t.Fatalf("slow stream ended with %v, want UNAVAILABLE", last)
	}
	waitFor(t, "the slow stream to be released", func() bool { return e.n.Info().GRPCConnections == 1 })
	if r := fast.call(protocol.Command{Op: protocol.OpPing}); r.Error != nil {
		t.Fatalf("fast stream after: %+v", r)
	}
}

// TestGrpcurl runs the real grpcurl against the server's reflection. make
// test installs it and sets TETHER_GRPCURL; elsewhere the test looks on PATH
// and skips when grpcurl is absent, unless TETHER_REQUIRE_GRPCURL=1.
func TestGrpcurl(t *testing.T) {
	bin := os.Getenv("TETHER_GRPCURL")
	if bin == "" {
		bin, _ = exec.LookPath("grpcurl")
	}
	if bin == "" {
		if os.Getenv("TETHER_REQUIRE_GRPCURL") == "1" {
			t.Fatal("grpcurl not found: set TETHER_GRPCURL or put grpcurl on PATH (make test installs it)")
		}
		t.Skip("grpcurl not found (make test installs it: go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3)")
	}
	cfg := tethertest.Config()
	cfg.APIKey = "k"
	e := startEnv(t, cfg, false)
	addr := e.n.GRPCAddr().String()
	sub := e.dialWS()
	sub.subscribe("news", nil)
	grpcurl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, append([]string{"-plaintext"}, args...)...).CombinedOutput()
		return string(out), err
	}
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"list", []string{addr, "list"}, "tether.v1.ServerAPI", false},
		{"describe", []string{addr, "describe", "tether.v1.ServerAPI.Broadcast"}, "BroadcastRequest", false},
		{"health", []string{addr, "grpc.health.v1.Health/Check"}, "SERVING", false},
		{"publish", []string{"-H", "authorization: Bearer k", "-d", `{"channel":"news","data":"{\"text\":\"hi\"}"}`, addr, "tether.v1.ServerAPI/Publish"}, `"offset": "1"`, false},
		{"info", []string{"-H", "authorization: Bearer k", addr, "tether.v1.ServerAPI/Info"}, `"websocketConnections": "1"`, false},
		{"no key", []string{addr, "tether.v1.ServerAPI/Info"}, "Unauthenticated", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := grpcurl(tt.args...)
			var ee *exec.ExitError
			if (err != nil) != tt.wantErr || (err != nil && !errors.As(err, &ee)) {
				t.Fatalf("grpcurl %v: %v\n%s", tt.args, err, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("grpcurl %v:\n%s\nwant %q in it", tt.args, out, tt.want)
			}
		})
	}
	if m := sub.untilPub(); m.Offset != 1 || string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("subscriber got %+v", m)
	}
}

// TestGRPCStreamHalfClose: a client that is done sending keeps receiving.
func TestGRPCStreamHalfClose(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := tetherv1.NewTetherClient(e.grpcConn()).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&tetherv1.ClientMessage{Json: []byte(`{"id":1,"op":"subscribe","channel":"news"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || !strings.Contains(string(msg.GetJson()), `"id":1,"result"`) {
		t.Fatalf("subscribe reply: %s %v", msg.GetJson(), err)
	}
	if _, err := e.n.Publish(context.Background(), "news", json.RawMessage(`"after"`)); err != nil {
		t.Fatal(err)
	}
	if msg, err := stream.Recv(); err != nil || !strings.Contains(string(msg.GetJson()), `"data":"after"`) {
		t.Fatalf("publication after half-close: %s %v", msg.GetJson(), err)
	}
}
