package serverapi

import (
	"context"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
)

type presenceRequest struct {
	Channel string `json:"channel"`
}

// presence serves POST /api/presence {"channel"} -> {"members"}.
func (a *API) presence(ctx context.Context, req *presenceRequest) (any, error) {
	ms, err := a.b.Presence(ctx, req.Channel)
	if err != nil {
		return nil, err
	}
	return struct {
		Members any `json:"members"`
	}{ms}, nil
}

// presenceStats serves POST /api/presence_stats {"channel"} ->
// {"clients","users"}.
func (a *API) presenceStats(ctx context.Context, req *presenceRequest) (any, error) {
	return a.b.PresenceStats(ctx, req.Channel)
}

func (g *grpcAPI) Presence(ctx context.Context, req *tetherv1.PresenceRequest) (*tetherv1.PresenceResponse, error) {
	ms, err := g.a.b.Presence(ctx, req.GetChannel())
	if err != nil {
		return nil, grpcError(err)
	}
	out := &tetherv1.PresenceResponse{Members: make([]*tetherv1.PresenceMember, len(ms))}
	for i, m := range ms {
		out.Members[i] = &tetherv1.PresenceMember{Client: m.Client, User: m.User, Info: string(m.Info), ConnectedAtUnixMs: m.ConnectedAt}
	}
	return out, nil
}

func (g *grpcAPI) PresenceStats(ctx context.Context, req *tetherv1.PresenceStatsRequest) (*tetherv1.PresenceStatsResponse, error) {
	st, err := g.a.b.PresenceStats(ctx, req.GetChannel())
	if err != nil {
		return nil, grpcError(err)
	}
	return &tetherv1.PresenceStatsResponse{Clients: int64(st.Clients), Users: int64(st.Users)}, nil
}
