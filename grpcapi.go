package tether

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
)

// grpcAuth is the unary interceptor that guards tether.v1.ServerAPI as
// authorized guards the HTTP API: "authorization: Bearer <key>" metadata, or,
// with no key configured, a loopback peer. Other services pass.
func (n *Node) grpcAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, "/"+tetherv1.ServerAPI_ServiceDesc.ServiceName+"/") {
		return handler(ctx, req)
	}
	if n.cfg.APIKey == "" {
		if p, ok := peer.FromContext(ctx); ok {
			if ta, ok := p.Addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
				return handler(ctx, req)
			}
		}
		return nil, status.Error(codes.Unauthenticated, "no API key is configured: the API answers loopback clients only")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		key, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(key), []byte(n.cfg.APIKey)) == 1 {
			return handler(ctx, req)
		}
	}
	return nil, status.Error(codes.Unauthenticated, "missing or wrong API key (authorization: Bearer <key> metadata)")
}

// grpcAPI implements tether.v1.ServerAPI over the Node's methods.
type grpcAPI struct {
	tetherv1.UnimplementedServerAPIServer
	n *Node
}

var _ tetherv1.ServerAPIServer = (*grpcAPI)(nil)

// grpcError turns an error of a Node method into a status.
func grpcError(err error) error {
	var perr *protocol.Error
	switch {
	case errors.Is(err, ErrNoClient):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.As(err, &perr) && perr.Code == protocol.ErrTooManyChans:
		return status.Error(codes.ResourceExhausted, perr.Error())
	case errors.As(err, &perr):
		return status.Error(codes.InvalidArgument, perr.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func jsonData(s string) (json.RawMessage, error) {
	if s == "" {
		return nil, status.Error(codes.InvalidArgument, "bad_request: data is required")
	}
	if !json.Valid([]byte(s)) {
		return nil, status.Error(codes.InvalidArgument, `bad_request: data must be a JSON value, as text (e.g. "{\"text\":\"hi\"}")`)
	}
	return json.RawMessage(s), nil
}

func pbPosition(epoch string, offset uint64) *tetherv1.Position {
	return &tetherv1.Position{Epoch: epoch, Offset: offset}
}

func (a *grpcAPI) Publish(_ context.Context, req *tetherv1.PublishRequest) (*tetherv1.PublishResponse, error) {
	data, err := jsonData(req.GetData())
	if err != nil {
		return nil, err
	}
	pos, err := a.n.Publish(req.GetChannel(), data)
	if err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.PublishResponse{Position: pbPosition(pos.Epoch, pos.Offset)}, nil
}

func (a *grpcAPI) Broadcast(_ context.Context, req *tetherv1.BroadcastRequest) (*tetherv1.BroadcastResponse, error) {
	data, err := jsonData(req.GetData())
	if err != nil {
		return nil, err
	}
	res, err := a.n.Broadcast(req.GetChannels(), data)
	if err != nil {
		return nil, grpcError(err)
	}
	out := &tetherv1.BroadcastResponse{Results: make([]*tetherv1.BroadcastResult, len(res))}
	for i, r := range res {
		br := &tetherv1.BroadcastResult{Channel: r.Channel}
		if r.Error != nil {
			br.Error = &tetherv1.Error{Code: r.Error.Code, Message: r.Error.Message}
		} else {
			br.Position = pbPosition(r.Epoch, r.Offset)
		}
		out.Results[i] = br
	}
	return out, nil
}

func (a *grpcAPI) History(_ context.Context, req *tetherv1.HistoryRequest) (*tetherv1.HistoryResponse, error) {
	var since *protocol.Position
	if s := req.GetSince(); s != nil {
		since = &protocol.Position{Epoch: s.GetEpoch(), Offset: s.GetOffset()}
	}
	res, err := a.n.History(req.GetChannel(), since, int(req.GetLimit()))
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

func (a *grpcAPI) Presence(context.Context, *tetherv1.PresenceRequest) (*tetherv1.PresenceResponse, error) {
	return nil, status.Error(codes.Unimplemented, "presence is not implemented yet")
}

func (a *grpcAPI) Disconnect(_ context.Context, req *tetherv1.DisconnectRequest) (*tetherv1.DisconnectResponse, error) {
	if req.GetClient() == "" {
		return nil, status.Error(codes.InvalidArgument, "bad_request: client is required")
	}
	if err := a.n.Disconnect(req.GetClient(), req.GetReconnect()); err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.DisconnectResponse{}, nil
}

func (a *grpcAPI) Info(context.Context, *tetherv1.InfoRequest) (*tetherv1.InfoResponse, error) {
	in := a.n.Info()
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
	}, nil
}
