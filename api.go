package tether

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/internal/serverapi"
	"github.com/tetherhq/tether/protocol"
)

// MaxBroadcastChannels caps the channels of one broadcast.
const MaxBroadcastChannels = 1000

// PublishOption configures one Publish or Broadcast.
type PublishOption func(*publishOptions)

type publishOptions struct {
	from *protocol.ClientInfo
}

// PublishFrom sets who a publication comes from, as its subscribers see it
// (the publication's "from"). Without it a publication has none: it comes from
// the server.
func PublishFrom(who protocol.ClientInfo) PublishOption {
	return func(o *publishOptions) { o.from = &who }
}

func applyPublishOptions(opts []PublishOption) publishOptions {
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// checkPublish refuses a publish before it starts: an ended ctx, a node shut
// down, a bad channel name, data that is not one JSON value.
func (n *Node) checkPublish(ctx context.Context, channel string, data json.RawMessage) error {
	if err := n.checkCall(ctx); err != nil {
		return err
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return refuse(perr)
	}
	if !json.Valid(data) {
		return badRequest("data is not valid JSON")
	}
	return nil
}

// checkCall refuses any call once ctx has ended or the node is shut down.
func (n *Node) checkCall(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// publish publishes a checked publication: the one path from the node's
// methods (Publish, Broadcast) to its channels.
func (n *Node) publish(ctx context.Context, channel string, data json.RawMessage, o publishOptions) (protocol.Position, error) {
	pos, err := n.sessions.Publish(ctx, channel, data, o.from)
	if err != nil {
		return pos, n.backendError("publish", err)
	}
	return pos, nil
}

// backendError turns an error of the hub or a backend into the node's: a
// refusal the caller can act on, ctx's error, or ErrUnavailable holding the
// backend's error (logged; the server API answers with a generic message).
func (n *Node) backendError(op string, err error) error {
	var perr *protocol.Error
	switch {
	case errors.As(err, &perr):
		return refuse(perr)
	case errors.Is(err, backend.ErrTooManyChannels):
		return refuse(protocol.NewError(protocol.ErrTooManyChans, "the server holds its maximum number of channels"))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	n.log.Warn("backend failed", "op", op, "err", err)
	return &failure{op: op, cause: err}
}

// BroadcastResult is the outcome of a broadcast for one channel: its position,
// or an error.
type BroadcastResult struct {
	Channel string          `json:"channel"`
	Epoch   string          `json:"epoch,omitempty"`
	Offset  uint64          `json:"offset,omitempty"`
	Error   *protocol.Error `json:"error,omitempty"`
}

// Broadcast publishes data, a JSON value, to every channel in channels and
// returns one result per channel, in order. A channel that fails does not stop
// the others; err is set only when the whole request is refused: ctx's error,
// ErrClosed, or ErrBadRequest (no channels, more than MaxBroadcastChannels,
// data that is not JSON).
func (n *Node) Broadcast(ctx context.Context, channels []string, data json.RawMessage, opts ...PublishOption) ([]BroadcastResult, error) {
	if err := n.checkCall(ctx); err != nil {
		return nil, err
	}
	if len(channels) == 0 {
		return nil, badRequest("channels are required")
	}
	if len(channels) > MaxBroadcastChannels {
		return nil, badRequest("at most %d channels per broadcast", MaxBroadcastChannels)
	}
	if !json.Valid(data) {
		return nil, badRequest("data is not valid JSON")
	}
	o := applyPublishOptions(opts)
	out := make([]BroadcastResult, len(channels))
	for i, ch := range channels {
		out[i].Channel = ch
		if perr := protocol.ValidateChannel(ch, n.cfg.MaxChannelLength); perr != nil {
			out[i].Error = perr
			continue
		}
		pos, err := n.publish(ctx, ch, data, o)
		if err != nil {
			if !errors.As(err, &out[i].Error) {
				out[i].Error = protocol.NewError(protocol.ErrInternal, "%v", err)
			}
			continue
		}
		out[i].Epoch, out[i].Offset = pos.Epoch, pos.Offset
	}
	return out, nil
}

// History returns up to limit publications of channel after since (nil: from
// the oldest kept; limit 0: all that are kept) and the channel's position.
// It refuses with ctx's error, ErrClosed, ErrInvalidChannel or ErrBadRequest
// (a negative limit), and fails with ErrUnavailable when the history store
// does.
func (n *Node) History(ctx context.Context, channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	if err := n.checkCall(ctx); err != nil {
		return nil, err
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return nil, refuse(perr)
	}
	if limit < 0 {
		return nil, badRequest("limit must not be negative")
	}
	res, err := n.hub.History(ctx, channel, since, limit)
	if err != nil {
		return nil, n.backendError("history", err)
	}
	return res, nil
}

// Disconnect closes the connection of the client with the given id, on any
// transport, telling it whether to reconnect. It returns ErrNoClient when
// there is none, or ctx's error.
func (n *Node) Disconnect(ctx context.Context, client string, reconnect bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := n.sessions.Get(client)
	if s == nil {
		return fmt.Errorf("%w: %q", ErrNoClient, client)
	}
	d := protocol.DisconnectForce
	if reconnect {
		d = protocol.DisconnectForceReconnect
	}
	s.Disconnect(d)
	return nil
}

// Info holds a node's statistics, as /api/info answers them: one type with the
// server API's, so the two cannot drift.
type Info = serverapi.Info

// Info returns the node's statistics. It visits every channel.
func (n *Node) Info() Info {
	tcp, grpcStreams := n.transportConns()
	ws := n.ws.Len()
	hs := n.hub.Stats()
	st := n.sessions.Stats()
	return Info{
		Connections:          int64(ws + tcp + grpcStreams),
		WebSocketConnections: int64(ws),
		TCPConnections:       int64(tcp),
		GRPCConnections:      int64(grpcStreams),
		Channels:             int64(hs.Channels),
		Subscriptions:        int64(hs.Subscriptions),
		Publications:         st.Publications.Load(),
		SlowConsumers:        st.SlowConsumers.Load(),
		HeartbeatTimeouts:    st.HeartbeatTimeouts.Load(),
		SessionsOpened:       st.Opened.Load(),
		UptimeSeconds:        int64(time.Since(n.started).Seconds()),
		ProtocolVersion:      protocol.Version,
		Nodes:                n.clusterNodes(),
	}
}

// apiBackend is the node as the server API sees it (serverapi.Backend): its
// public methods, in the API's types.
type apiBackend struct{ n *Node }

var _ serverapi.Backend = apiBackend{}

func (b apiBackend) Publish(ctx context.Context, channel string, data json.RawMessage) (protocol.Position, error) {
	return b.n.Publish(ctx, channel, data)
}

func (b apiBackend) Broadcast(ctx context.Context, channels []string, data json.RawMessage) ([]serverapi.BroadcastResult, error) {
	res, err := b.n.Broadcast(ctx, channels, data)
	if err != nil {
		return nil, err
	}
	out := make([]serverapi.BroadcastResult, len(res))
	for i, r := range res {
		out[i] = serverapi.BroadcastResult(r)
	}
	return out, nil
}

func (b apiBackend) History(ctx context.Context, channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	return b.n.History(ctx, channel, since, limit)
}

func (b apiBackend) Disconnect(ctx context.Context, client string, reconnect bool) error {
	return b.n.Disconnect(ctx, client, reconnect)
}

func (b apiBackend) Info() serverapi.Info { return b.n.Info() }
