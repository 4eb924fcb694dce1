package serverapi

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// newGRPC serves a's ServerAPI, guarded, and a health service on loopback, and
// returns a connection to them.
func newGRPC(t *testing.T, a *API) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ChainUnaryInterceptor(a.UnaryInterceptor), grpc.ChainStreamInterceptor(a.StreamInterceptor))
	a.RegisterGRPC(s)
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestGRPC(t *testing.T) {
	b := &fakeBackend{}
	cc := newGRPC(t, New(Config{Backend: b, APIKey: "k", MaxBodySize: 256}))
	api := tetherv1.NewServerAPIClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
	tests := []struct {
		name       string
		ctx        context.Context
		backendErr error
		call       func(context.Context) error
		code       codes.Code
		msg        string // in the status message
		backend    string // the backend's one call; "" for none
	}{
		{"publish", authed, nil, func(ctx context.Context) error {
			res, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: `{"v":1}`})
			if err == nil && res.GetPosition().GetOffset() != 7 {
				t.Errorf("position %v", res.GetPosition())
			}
			return err
		}, codes.OK, "", `publish a {"v":1}`},
		{"publish, no key", ctx, nil, func(ctx context.Context) error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: `1`})
			return err
		}, codes.Unauthenticated, "unauthorized: missing or wrong API key", ""},
		{"publish without data", authed, nil, func(ctx context.Context) error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a"})
			return err
		}, codes.InvalidArgument, "bad_request: data is required", ""},
		{"publish data not JSON", authed, nil, func(ctx context.Context) error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: "{"})
			return err
		}, codes.InvalidArgument, "bad_request: data must be a JSON value", ""},
		{"publish, too many channels", authed, protocol.NewError(protocol.ErrTooManyChans, "full"), func(ctx context.Context) error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: `1`})
			return err
		}, codes.ResourceExhausted, "too_many_channels: full", "publish a 1"},
		{"publish, shutting down", authed, errShutDown, func(ctx context.Context) error {
			_, err := api.Publish(ctx, &tetherv1.PublishRequest{Channel: "a", Data: `1`})
			return err
		}, codes.Unavailable, "unavailable: node is shut down", "publish a 1"},
		{"broadcast", authed, nil, func(ctx context.Context) error {
			res, err := api.Broadcast(ctx, &tetherv1.BroadcastRequest{Channels: []string{"a", "b c"}, Data: `1`})
			if r := res.GetResults(); err == nil && (len(r) != 2 || r[0].GetPosition().GetOffset() != 1 || r[1].GetError().GetCode() != protocol.ErrInvalidChannel) {
				t.Errorf("results %v", r)
			}
			return err
		}, codes.OK, "", "broadcast a,b c 1"},
		{"history", authed, nil, func(ctx context.Context) error {
			res, err := api.History(ctx, &tetherv1.HistoryRequest{Channel: "a", Since: &tetherv1.Position{Epoch: "e"}})
			if p := res.GetPublications(); err == nil && (len(p) != 1 || p[0].GetData() != `"x"` || p[0].GetFrom().GetUser() != "ann") {
				t.Errorf("publications %v", p)
			}
			return err
		}, codes.OK, "", "history a since e"},
		{"disconnect unknown", authed, errNoSuch, func(ctx context.Context) error {
			_, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{Client: "c1"})
			return err
		}, codes.NotFound, "bad_request: no such client", "disconnect c1"},
		{"disconnect without client", authed, nil, func(ctx context.Context) error {
			_, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{})
			return err
		}, codes.InvalidArgument, "exactly one of client and user is required", ""},
		{"disconnect user", authed, nil, func(ctx context.Context) error {
			res, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{User: "ann"})
			if err == nil && res.GetDisconnected() != 2 {
				t.Errorf("disconnected %d", res.GetDisconnected())
			}
			return err
		}, codes.OK, "", "disconnect user ann"},
		{"unsubscribe", authed, nil, func(ctx context.Context) error {
			res, err := api.Unsubscribe(ctx, &tetherv1.UnsubscribeRequest{User: "ann", Channel: "c"})
			if err == nil && res.GetUnsubscribed() != 1 {
				t.Errorf("unsubscribed %d", res.GetUnsubscribed())
			}
			return err
		}, codes.OK, "", "unsubscribe ann c"},
		{"unsubscribe without user", authed, nil, func(ctx context.Context) error {
			_, err := api.Unsubscribe(ctx, &tetherv1.UnsubscribeRequest{Channel: "c"})
			return err
		}, codes.InvalidArgument, "user is required", ""},
		{"info", authed, nil, func(ctx context.Context) error {
			res, err := api.Info(ctx, &tetherv1.InfoRequest{})
			if err == nil && (res.GetConnections() != 3 || res.GetTcpConnections() != 1 || res.GetProtocolVersion() != 1) {
				t.Errorf("info %v", res)
			}
			return err
		}, codes.OK, "", "info"},
		{"presence", authed, nil, func(ctx context.Context) error {
			res, err := api.Presence(ctx, &tetherv1.PresenceRequest{Channel: "a"})
			if m := res.GetMembers(); err == nil && (len(m) != 1 || m[0].GetClient() != "c1" || m[0].GetUser() != "ann" ||
				m[0].GetInfo() != `{"n":1}` || m[0].GetConnectedAtUnixMs() != 1700000000000) {
				t.Errorf("presence %v", res)
			}
			return err
		}, codes.OK, "", "presence a"},
		{"presence, backend down", authed, errors.New("store down"), func(ctx context.Context) error {
			_, err := api.Presence(ctx, &tetherv1.PresenceRequest{Channel: "a"})
			return err
		}, codes.Internal, "", "presence a"},
		{"presence stats", authed, nil, func(ctx context.Context) error {
			res, err := api.PresenceStats(ctx, &tetherv1.PresenceStatsRequest{Channel: "a"})
			if err == nil && (res.GetClients() != 4 || res.GetUsers() != 2) {
				t.Errorf("presence stats %v", res)
			}
			return err
		}, codes.OK, "", "presence_stats a"},
		{"presence, no key", ctx, nil, func(ctx context.Context) error {
			_, err := api.Presence(ctx, &tetherv1.PresenceRequest{Channel: "a"})
			return err
		}, codes.Unauthenticated, "", ""},
		{"health needs no key", ctx, nil, func(ctx context.Context) error {
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}, codes.OK, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.mu.Lock()
			b.err, b.calls = tt.backendErr, nil
			b.mu.Unlock()
			err := tt.call(tt.ctx)
			if st := status.Convert(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Fatalf("got %v, want %v with %q", err, tt.code, tt.msg)
			}
			calls := b.called()
			if tt.backend == "" && len(calls) != 0 || tt.backend != "" && (len(calls) != 1 || calls[0] != tt.backend) {
				t.Fatalf("backend calls %q, want %q", calls, tt.backend)
			}
		})
	}
}

// TestGRPCWithoutKey: with no key, a loopback peer is served.
func TestGRPCWithoutKey(t *testing.T) {
	cc := newGRPC(t, New(Config{Backend: &fakeBackend{}, MaxBodySize: 256}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tetherv1.NewServerAPIClient(cc).Info(ctx, &tetherv1.InfoRequest{}); err != nil {
		t.Fatalf("loopback Info without a key: %v", err)
	}
}
