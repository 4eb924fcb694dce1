package serverapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// MaxBatch caps the publications of one batch (POST /api/batch,
// ServerAPI/Batch).
const MaxBatch = 1000

// The refusals of a whole batch.
var (
	errNoPublications = protocol.NewError(protocol.ErrBadRequest, "publications are required")
	errBatchTooLong   = &kindError{KindTooLarge, protocol.NewError(protocol.ErrBadRequest, "at most %d publications per batch", MaxBatch)}
)

// item is one publication of a batch or a publish stream.
type item struct {
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// publishOne publishes one item of a batch or stream, checking what a single
// publish checks, and returns its result: a position or an error.
func (a *API) publishOne(ctx context.Context, it item) BroadcastResult {
	r := BroadcastResult{Channel: it.Channel}
	err := error(errNoData)
	switch {
	case len(it.Data) == 0:
	case int64(len(it.Data)) > a.maxBody:
		err = protocol.NewError(protocol.ErrBadRequest, "data is larger than %d bytes", a.maxBody)
	default:
		var pos protocol.Position
		if pos, err = a.b.Publish(ctx, it.Channel, it.Data); err == nil {
			r.Epoch, r.Offset = pos.Epoch, pos.Offset
			return r
		}
	}
	_, r.Error = Classify(err)
	return r
}

// publishAll publishes items in order, each with its own result. Items go
// one after another: two to one channel get their offsets in request order.
func (a *API) publishAll(ctx context.Context, items []item) ([]BroadcastResult, error) {
	switch {
	case len(items) == 0:
		return nil, errNoPublications
	case len(items) > MaxBatch:
		return nil, errBatchTooLong
	}
	res := make([]BroadcastResult, len(items))
	for i, it := range items {
		res[i] = a.publishOne(ctx, it)
	}
	return res, nil
}

type batchRequest struct {
	Publications []item `json:"publications"`
}

// batch serves POST /api/batch {"publications":[{"channel","data"},...]} ->
// {"results":[{"channel","epoch","offset"} or {"channel","error"},...]}.
func (a *API) batch(ctx context.Context, req *batchRequest) (any, error) {
	res, err := a.publishAll(ctx, req.Publications)
	if err != nil {
		return nil, err
	}
	return struct {
		Results []BroadcastResult `json:"results"`
	}{res}, nil
}

// pbResult is r in the gRPC API's terms.
func pbResult(r BroadcastResult) *tetherv1.BroadcastResult {
	br := &tetherv1.BroadcastResult{Channel: r.Channel}
	if r.Error != nil {
		br.Error = &tetherv1.Error{Code: r.Error.Code, Message: r.Error.Message}
	} else {
		br.Position = pbPosition(r.Epoch, r.Offset)
	}
	return br
}

// pbItem checks a gRPC publication's data (JSON as text) and returns it as an
// item, or the result that refuses it.
func pbItem(channel, data string) (item, *BroadcastResult) {
	raw, err := jsonData(data)
	if err != nil {
		_, perr := Classify(err)
		return item{}, &BroadcastResult{Channel: channel, Error: perr}
	}
	return item{Channel: channel, Data: raw}, nil
}

func (g *grpcAPI) Batch(ctx context.Context, req *tetherv1.BatchRequest) (*tetherv1.BatchResponse, error) {
	pubs := req.GetPublications()
	switch {
	case len(pubs) == 0:
		return nil, grpcError(errNoPublications)
	case len(pubs) > MaxBatch:
		return nil, grpcError(errBatchTooLong)
	}
	out := &tetherv1.BatchResponse{Results: make([]*tetherv1.BroadcastResult, len(pubs))}
	for i, p := range pubs {
		it, refused := pbItem(p.GetChannel(), p.GetData())
		if refused == nil {
			r := g.a.publishOne(ctx, it)
			refused = &r
		}
		out.Results[i] = pbResult(*refused)
	}
	return out, nil
}

// PublishStream publishes each message as it comes and answers it, in order,
// until the caller closes its side (then it returns OK) or the stream ends.
func (g *grpcAPI) PublishStream(stream tetherv1.ServerAPI_PublishStreamServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		it, refused := pbItem(req.GetChannel(), req.GetData())
		if refused == nil {
			r := g.a.publishOne(ctx, it)
			refused = &r
		}
		res := &tetherv1.PublishStreamResponse{Id: req.GetId()}
		if refused.Error != nil {
			res.Error = &tetherv1.Error{Code: refused.Error.Code, Message: refused.Error.Message}
		} else {
			res.Position = pbPosition(refused.Epoch, refused.Offset)
		}
		if err := stream.Send(res); err != nil {
			return err
		}
	}
}

// StreamInterceptor runs authorize on every streaming tether.v1.ServerAPI
// call (PublishStream) before it starts, as UnaryInterceptor does on the
// others, and answers a refusal UNAUTHENTICATED. Streams of other services
// (tether.v1.Tether's client connections) pass untouched.
func (a *API) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !isServerAPI(info.FullMethod) {
		return handler(srv, ss)
	}
	if err := a.authorizeGRPC(ss.Context()); err != nil {
		return err
	}
	return handler(srv, ss)
}

// authorizeGRPC runs authorize with ctx's "authorization" metadata and peer
// address, and returns a refusal as a gRPC status.
func (a *API) authorizeGRPC(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}
	if err := a.authorize(md.Get("authorization"), remote); err != nil {
		return grpcError(err)
	}
	return nil
}
