package serverapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

func TestHTTPBatch(t *testing.T) {
	many := `{"publications":[` + strings.Repeat(`{"channel":"a","data":1},`, MaxBatch) + `{"channel":"a","data":1}]}`
	tests := []struct {
		name   string
		key    string
		body   string
		status int
		want   string   // the body, or a part of it
		calls  []string // the backend's calls, in order
	}{
		{"in order, each with its result", "k", `{"publications":[{"channel":"a","data":{"v":1}},{"channel":"full","data":2},{"channel":"b"},{"channel":"a","data":"` + strings.Repeat("x", 300) + `"},{"channel":"a","data":3}]}`, 200,
			`{"results":[{"channel":"a","epoch":"e","offset":7},{"channel":"full","error":{"code":"too_many_channels","message":"full"}},{"channel":"b","error":{"code":"bad_request","message":"data is required"}},{"channel":"a","error":{"code":"bad_request","message":"data is larger than 256 bytes"}},{"channel":"a","epoch":"e","offset":7}]}`,
			[]string{`publish a {"v":1}`, "publish full 2", "publish a 3"}},
		{"no publications", "k", `{"publications":[]}`, 400, `publications are required`, nil},
		{"too many publications", "k", many, 413, fmt.Sprintf("at most %d publications per batch", MaxBatch), nil},
		{"body over the batch limit", "k", `{"publications":[{"channel":"a","data":"` + strings.Repeat("x", 16*256) + `"}]}`, 413, `larger than 4096 bytes`, nil},
		{"malformed", "k", `{"publications":[{"channel":"a","data":}]}`, 400, `malformed JSON body`, nil},
		{"no key", "", `{"publications":[{"channel":"a","data":1}]}`, 401, `"code":"unauthorized"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackend{}
			// the "too many" body is larger than 16*256: let it reach the count check
			cfg := Config{Backend: b, APIKey: "k", MaxBodySize: 256}
			if tt.body == many {
				cfg.MaxBatchSize = len(many)
			}
			srv := newHTTP(t, New(cfg))
			resp, body := do(t, "POST", srv.URL+"/api/batch", tt.key, tt.body)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%d %s, want %d and %s", resp.StatusCode, body, tt.status, tt.want)
			}
			if got := b.called(); strings.Join(got, "|") != strings.Join(tt.calls, "|") {
				t.Fatalf("backend calls %q, want %q", got, tt.calls)
			}
		})
	}
}

func TestGRPCBatch(t *testing.T) {
	b := &fakeBackend{}
	api := tetherv1.NewServerAPIClient(newGRPC(t, New(Config{Backend: b, APIKey: "k", MaxBodySize: 256})))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")

	res, err := api.Batch(authed, &tetherv1.BatchRequest{Publications: []*tetherv1.PublishRequest{
		{Channel: "a", Data: `{"v":1}`}, {Channel: "a", Data: `{`}, {Channel: "full", Data: `2`},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := res.GetResults()
	if len(r) != 3 || r[0].GetPosition().GetOffset() != 7 || r[1].GetError().GetCode() != protocol.ErrBadRequest ||
		r[2].GetError().GetCode() != protocol.ErrTooManyChans || r[2].GetChannel() != "full" {
		t.Fatalf("results %v", r)
	}
	if got := b.called(); len(got) != 2 || got[0] != `publish a {"v":1}` || got[1] != "publish full 2" {
		t.Fatalf("backend calls %q", got)
	}
	if _, err := api.Batch(authed, &tetherv1.BatchRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty batch: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := api.Batch(ctx, &tetherv1.BatchRequest{Publications: []*tetherv1.PublishRequest{{Channel: "a", Data: "1"}}}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("batch without a key: %v, want UNAUTHENTICATED", err)
	}
}

func TestGRPCPublishStream(t *testing.T) {
	b := &fakeBackend{}
	api := tetherv1.NewServerAPIClient(newGRPC(t, New(Config{Backend: b, APIKey: "k", MaxBodySize: 256})))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("each message answered in order", func(t *testing.T) {
		stream, err := api.PublishStream(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k"))
		if err != nil {
			t.Fatal(err)
		}
		reqs := []*tetherv1.PublishStreamRequest{
			{Id: 1, Channel: "a", Data: `{"v":1}`},
			{Id: 2, Channel: "a"},
			{Id: 3, Channel: "full", Data: `3`},
			{Id: 4, Channel: "a", Data: `"` + strings.Repeat("x", 300) + `"`},
			{Id: 5, Channel: "b", Data: `5`},
		}
		for _, r := range reqs { // all sent before any answer is read: the stream pipelines
			if err := stream.Send(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		wantErr := map[uint64]string{2: protocol.ErrBadRequest, 3: protocol.ErrTooManyChans, 4: protocol.ErrBadRequest}
		for _, req := range reqs {
			res, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if res.GetId() != req.GetId() || res.GetError().GetCode() != wantErr[req.GetId()] || (res.GetError() == nil) != (res.GetPosition() != nil) {
				t.Fatalf("response %v to %v", res, req)
			}
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the last answer: %v, want EOF", err)
		}
		if got := b.called(); len(got) != 3 || got[2] != "publish b 5" {
			t.Fatalf("backend calls %q", got)
		}
	})
	t.Run("no key", func(t *testing.T) {
		stream, err := api.PublishStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = stream.Send(&tetherv1.PublishStreamRequest{Id: 1, Channel: "a", Data: "1"})
		if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("stream without a key: %v, want UNAUTHENTICATED", err)
		}
	})
}
