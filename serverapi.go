package tether

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tetherhq/tether/protocol"
)

// MaxBroadcastChannels caps the channels of one broadcast.
const MaxBroadcastChannels = 1000

// ErrNoClient is returned by Disconnect when no client has the given id.
var ErrNoClient = errors.New("tether: no such client")

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
// the others; err is set only when the whole request is refused.
func (n *Node) Broadcast(channels []string, data json.RawMessage) ([]BroadcastResult, error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if len(channels) == 0 {
		return nil, fmt.Errorf("tether: %w", protocol.NewError(protocol.ErrBadRequest, "channels are required"))
	}
	if len(channels) > MaxBroadcastChannels {
		return nil, fmt.Errorf("tether: %w", protocol.NewError(protocol.ErrBadRequest, "at most %d channels per broadcast", MaxBroadcastChannels))
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("tether: %w", protocol.NewError(protocol.ErrBadRequest, "data is not valid JSON"))
	}
	out := make([]BroadcastResult, len(channels))
	for i, ch := range channels {
		out[i].Channel = ch
		if perr := protocol.ValidateChannel(ch, n.cfg.MaxChannelLength); perr != nil {
			out[i].Error = perr
			continue
		}
		pos, err := n.sessions.Publish(context.Background(), ch, data, nil)
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
func (n *Node) History(channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if perr := protocol.ValidateChannel(channel, n.cfg.MaxChannelLength); perr != nil {
		return nil, fmt.Errorf("tether: %w", perr)
	}
	if limit < 0 {
		return nil, fmt.Errorf("tether: %w", protocol.NewError(protocol.ErrBadRequest, "limit must not be negative"))
	}
	return n.hub.History(context.Background(), channel, since, limit)
}

// Disconnect closes the connection of the client with the given id, on any
// transport, telling it whether to reconnect. It returns ErrNoClient when
// there is none.
func (n *Node) Disconnect(client string, reconnect bool) error {
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

// Info holds a node's statistics.
type Info struct {
	Connections          int64 `json:"connections"`
	WebSocketConnections int64 `json:"websocket_connections"`
	TCPConnections       int64 `json:"tcp_connections"`
	GRPCConnections      int64 `json:"grpc_connections"`
	Channels             int64 `json:"channels"`
	Subscriptions        int64 `json:"subscriptions"`
	Publications         int64 `json:"publications"`
	SlowConsumers        int64 `json:"slow_consumers"`
	HeartbeatTimeouts    int64 `json:"heartbeat_timeouts"`
	SessionsOpened       int64 `json:"sessions_opened"`
	UptimeSeconds        int64 `json:"uptime_seconds"`
	ProtocolVersion      int   `json:"protocol_version"`
}

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
	}
}

// apiRoutes adds the server API endpoints beyond /api/publish.
func (n *Node) apiRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/broadcast", apiHandler(n, n.apiBroadcast))
	mux.HandleFunc("POST /api/history", apiHandler(n, n.apiHistory))
	mux.HandleFunc("POST /api/disconnect", apiHandler(n, n.apiDisconnect))
	mux.HandleFunc("POST /api/info", n.apiInfo)
	mux.HandleFunc("GET /api/info", n.apiInfo)
}

type broadcastRequest struct {
	Channels []string        `json:"channels"`
	Data     json.RawMessage `json:"data"`
}

// apiBroadcast serves POST /api/broadcast {"channels","data"} -> {"results"}.
func (n *Node) apiBroadcast(req *broadcastRequest) (any, error) {
	if len(req.Data) == 0 {
		return nil, errNoData
	}
	res, err := n.Broadcast(req.Channels, req.Data)
	if err != nil {
		return nil, err
	}
	return struct {
		Results []BroadcastResult `json:"results"`
	}{res}, nil
}

type historyRequest struct {
	Channel string             `json:"channel"`
	Since   *protocol.Position `json:"since"`
	Limit   int                `json:"limit"`
}

// apiHistory serves POST /api/history {"channel","since","limit"} ->
// {"epoch","offset","publications"}.
func (n *Node) apiHistory(req *historyRequest) (any, error) {
	return n.History(req.Channel, req.Since, req.Limit)
}

type disconnectRequest struct {
	Client    string `json:"client"`
	Reconnect bool   `json:"reconnect"`
}

// apiDisconnect serves POST /api/disconnect {"client","reconnect"} -> {}.
func (n *Node) apiDisconnect(req *disconnectRequest) (any, error) {
	if req.Client == "" {
		return nil, protocol.NewError(protocol.ErrBadRequest, "client is required")
	}
	return struct{}{}, n.Disconnect(req.Client, req.Reconnect)
}

// apiInfo serves GET or POST /api/info -> the node's Info.
func (n *Node) apiInfo(w http.ResponseWriter, r *http.Request) {
	if !n.authorized(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, n.Info())
}

// writeNodeError answers with the status and protocol error that fit err, an
// error of a Node method.
func writeNodeError(w http.ResponseWriter, err error) {
	var perr *protocol.Error
	switch {
	case errors.Is(err, ErrNoClient):
		writeAPIError(w, http.StatusNotFound, protocol.ErrBadRequest, "%v", err)
	case errors.Is(err, ErrClosed):
		writeAPIError(w, http.StatusServiceUnavailable, protocol.ErrUnavailable, "%v", err)
	case errors.As(err, &perr):
		writeJSON(w, http.StatusBadRequest, apiError{perr})
	default:
		writeAPIError(w, http.StatusInternalServerError, protocol.ErrInternal, "%v", err)
	}
}
