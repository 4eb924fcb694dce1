package serverapi

import (
	"context"
	"encoding/json"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/tetherhq/tether/backend"
	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// RegisterGRPC registers tether.v1.ServerAPI on s. Guard it with
// UnaryInterceptor and StreamInterceptor.
func (a *API) RegisterGRPC(s grpc.ServiceRegistrar) {
	tetherv1.RegisterServerAPIServer(s, &grpcAPI{a: a})
}

// UnaryInterceptor runs authorize on every tether.v1.ServerAPI call, with the
// "authorization" metadata and the peer's address, and answers a refusal
// UNAUTHENTICATED. Calls of other services pass untouched.
func (a *API) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !isServerAPI(info.FullMethod) {
		return handler(ctx, req)
	}
	if err := a.authorizeGRPC(ctx); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// isServerAPI reports whether a gRPC method is one of tether.v1.ServerAPI's.
func isServerAPI(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/"+tetherv1.ServerAPI_ServiceDesc.ServiceName+"/")
}

// grpcError turns err into a status with its kind's code and its protocol
// error ("code: message") as the message.
func grpcError(err error) error {
	kind, perr := Classify(err)
	return status.Error(kind.GRPCCode(), perr.Error())
}

// grpcAPI implements tether.v1.ServerAPI over the API's Backend.
type grpcAPI struct {
	tetherv1.UnimplementedServerAPIServer
	a *API
}

var _ tetherv1.ServerAPIServer = (*grpcAPI)(nil)

// errNotJSON refuses gRPC data that is not JSON text.
var errNotJSON = protocol.NewError(protocol.ErrBadRequest, `data must be a JSON value, as text (e.g. "{\"text\":\"hi\"}")`)

// jsonData checks the data of a gRPC publish or broadcast: JSON as text.
func jsonData(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, errNoData
	}
	if !json.Valid([]byte(s)) {
		return nil, errNotJSON
	}
	return json.RawMessage(s), nil
}

func pbPosition(epoch string, offset uint64) *tetherv1.Position {
	return &tetherv1.Position{Epoch: epoch, Offset: offset}
}

func (g *grpcAPI) Publish(ctx context.Context, req *tetherv1.PublishRequest) (*tetherv1.PublishResponse, error) {
	data, err := jsonData(req.GetData())
	if err != nil {
		return nil, grpcError(err)
	}
	pos, err := g.a.b.Publish(ctx, req.GetChannel(), data)
	if err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.PublishResponse{Position: pbPosition(pos.Epoch, pos.Offset)}, nil
}

func (g *grpcAPI) Broadcast(ctx context.Context, req *tetherv1.BroadcastRequest) (*tetherv1.BroadcastResponse, error) {
	data, err := jsonData(req.GetData())
	if err != nil {
		return nil, grpcError(err)
	}
	res, err := g.a.b.Broadcast(ctx, req.GetChannels(), data)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &tetherv1.BroadcastResponse{Results: make([]*tetherv1.BroadcastResult, len(res))}
	for i, r := range res {
		out.Results[i] = pbResult(r)
	}
	return out, nil
}

func (g *grpcAPI) History(ctx context.Context, req *tetherv1.HistoryRequest) (*tetherv1.HistoryResponse, error) {
	var since *protocol.Position
	if s := req.GetSince(); s != nil {
		since = &protocol.Position{Epoch: s.GetEpoch(), Offset: s.GetOffset()}
	}
	res, err := g.a.b.History(ctx, req.GetChannel(), since, int(req.GetLimit()))
	if err != nil {
		return nil, grpcError(err)
	}
	out := &tetherv1.HistoryResponse{
		Position:     pbPosition(res.Epoch, res.Offset),
		Publications: make([]*tetherv1.Publication, len(res.Publications)),
	}
	for i, p := range res.Publications {
		pub := &tetherv1.Publication{Channel: p.Channel, Epoch: p.Epoch, Offset: p.Offset, Data: string(p.Data)}
		if p.From != nil {
			pub.From = &tetherv1.ClientInfo{Client: p.From.Client, User: p.From.User}
		}
		out.Publications[i] = pub
	}
	return out, nil
}

func (g *grpcAPI) Disconnect(ctx context.Context, req *tetherv1.DisconnectRequest) (*tetherv1.DisconnectResponse, error) {
	if (req.GetClient() == "") == (req.GetUser() == "") {
		return nil, grpcError(errNoClient)
	}
	if req.GetUser() != "" {
		n, err := g.a.b.DisconnectUser(ctx, req.GetUser(), req.GetReconnect())
		if err != nil {
			return nil, grpcError(err)
		}
		return &tetherv1.DisconnectResponse{Disconnected: int64(n)}, nil
	}
	if err := g.a.b.Disconnect(ctx, req.GetClient(), req.GetReconnect()); err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.DisconnectResponse{}, nil
}

func (g *grpcAPI) Unsubscribe(ctx context.Context, req *tetherv1.UnsubscribeRequest) (*tetherv1.UnsubscribeResponse, error) {
	if req.GetUser() == "" {
		return nil, grpcError(errNoUser)
	}
	n, err := g.a.b.Unsubscribe(ctx, req.GetUser(), req.GetChannel())
	if err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.UnsubscribeResponse{Unsubscribed: int64(n)}, nil
}

func (g *grpcAPI) Info(context.Context, *tetherv1.InfoRequest) (*tetherv1.InfoResponse, error) {
	in := g.a.b.Info()
	return &tetherv1.InfoResponse{
		Connections:          in.Connections,
		WebsocketConnections: in.WebSocketConnections,
		TcpConnections:       in.TCPConnections,
		GrpcConnections:      in.GRPCConnections,
		Channels:             in.Channels,
		Subscriptions:        in.Subscriptions,
		Publications:         in.Publications,
		SlowConsumers:        in.SlowConsumers,
		HeartbeatTimeouts:    in.HeartbeatTimeouts,
		SessionsOpened:       in.SessionsOpened,
		UptimeSeconds:        in.UptimeSeconds,
		ProtocolVersion:      int32(in.ProtocolVersion),
		Nodes:                grpcNodes(in.Nodes),
	}, nil
}

func grpcNodes(nodes []backend.NodeInfo) []*tetherv1.NodeInfo {
	out := make([]*tetherv1.NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = &tetherv1.NodeInfo{Name: n.Name, Connections: n.Connections, Channels: n.Channels, SeenUnixMs: n.Seen.UnixMilli()}
	}
	return out
}
