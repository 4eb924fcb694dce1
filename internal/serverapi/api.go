// Package serverapi is tether's server API for backends: the HTTP endpoints
// (/api/publish, /api/broadcast, /api/batch, /api/history, /api/disconnect,
// /api/unsubscribe, /api/presence, /api/presence_stats, /api/info) and
// their gRPC mirror (tether.v1.ServerAPI), over one Backend.
//
// Both transports share one access check (authorize: the API key as a Bearer
// credential, or a loopback peer when no key is configured), which also guards
// whatever Guard wraps (the node's /metrics), and one error classifier
// (Classify: an error's Kind decides its HTTP status and its gRPC code alike).
//
// The package decodes, checks what the wire carries (a body's size, that data
// is present and, on gRPC where it travels as a string, that it is JSON text),
// calls the Backend and encodes its answer. It must not hold state of its own,
// validate what the Backend validates (channel names, limits), or log or echo
// a credential. All methods of API are safe for concurrent use.
package serverapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// Backend is what the API calls: the operations of a node. Its methods are
// called concurrently, each with the context of its request; they should give
// up when it ends.
//
// Errors are answered as Classify reads them: an error in whose chain is a
// Kinded error (such as the node's ErrClosed) gets that kind; the context's
// errors get KindCanceled or KindDeadline; a *protocol.Error (a request the
// caller can fix, or a limit) gets the kind of its code and is sent as it is;
// anything else is KindInternal.
type Backend interface {
	// Publish publishes data, a JSON value, to channel and returns its position.
	Publish(ctx context.Context, channel string, data json.RawMessage) (protocol.Position, error)
	// Broadcast publishes data to every channel and returns one result per
	// channel, in order; its error refuses the whole request.
	Broadcast(ctx context.Context, channels []string, data json.RawMessage) ([]BroadcastResult, error)
	// History returns up to limit publications of channel after since (nil:
	// from the oldest kept; limit 0: all kept) and the channel's position.
	History(ctx context.Context, channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error)
	// Disconnect closes a client's connection by its client id, telling it
	// whether to reconnect.
	Disconnect(ctx context.Context, client string, reconnect bool) error
	// DisconnectUser closes every connection of user, telling each whether
	// to reconnect, and returns how many there were.
	DisconnectUser(ctx context.Context, user string, reconnect bool) (int, error)
	// Unsubscribe ends the subscriptions of every connection of user to
	// channel and returns how many there were.
	Unsubscribe(ctx context.Context, user, channel string) (int, error)
	// Info returns the node's statistics.
	Info() Info
	// Presence returns channel's members, in no particular order.
	Presence(ctx context.Context, channel string) ([]protocol.Member, error)
	// PresenceStats returns channel's counts of members and distinct users.
	PresenceStats(ctx context.Context, channel string) (protocol.PresenceStats, error)
}

// BroadcastResult is the outcome of a broadcast for one channel: its position,
// or an error.
type BroadcastResult struct {
	Channel string          `json:"channel"`
	Epoch   string          `json:"epoch,omitempty"`
	Offset  uint64          `json:"offset,omitempty"`
	Error   *protocol.Error `json:"error,omitempty"`
}

// Info holds a node's statistics, as /api/info and ServerAPI/Info answer them.
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
	// Nodes lists every node of the cluster, this one included, as they
	// last announced themselves; empty for a node alone (no NATS).
	Nodes []backend.NodeInfo `json:"nodes,omitempty"`
}

// Config configures an API.
type Config struct {
	// Backend does the work. Required.
	Backend Backend
	// APIKey, when set, is the credential every call must carry, as
	// "Authorization: Bearer <key>" (HTTP header or gRPC metadata). Empty: the
	// API answers loopback peers only.
	APIKey string
	// MaxBodySize caps an HTTP request body, in bytes, and the data of each
	// publication of a batch; a larger body is refused with 413. It must be
	// positive.
	MaxBodySize int
	// MaxBatchSize caps the body of POST /api/batch, in bytes. Defaults to 16
	// times MaxBodySize.
	MaxBatchSize int
}

// API serves the server API over HTTP (Routes) and gRPC (RegisterGRPC and
// UnaryInterceptor).
type API struct {
	b       Backend
	hasKey  bool
	keySum  [sha256.Size]byte // of the API key: compared in constant time, whatever its length
	maxBody int64
	// maxBatch caps a batch's body.
	maxBatch int64
	// posts are the POST endpoints with a JSON body, by path; set by New,
	// read-only after.
	posts map[string]*route
}

// New returns the API of cfg.Backend.
func New(cfg Config) *API {
	if cfg.MaxBatchSize <= 0 {
		cfg.MaxBatchSize = 16 * cfg.MaxBodySize
	}
	a := &API{
		b:        cfg.Backend,
		hasKey:   cfg.APIKey != "",
		keySum:   sha256.Sum256([]byte(cfg.APIKey)),
		maxBody:  int64(cfg.MaxBodySize),
		maxBatch: int64(cfg.MaxBatchSize),
	}
	a.posts = map[string]*route{
		"/api/publish":        newRoute(a.maxBody, a.publish),
		"/api/batch":          newRoute(a.maxBatch, a.batch),
		"/api/broadcast":      newRoute(a.maxBody, a.broadcast),
		"/api/history":        newRoute(a.maxBody, a.history),
		"/api/disconnect":     newRoute(a.maxBody, a.disconnect),
		"/api/unsubscribe":    newRoute(a.maxBody, a.unsubscribe),
		"/api/presence":       newRoute(a.maxBody, a.presence),
		"/api/presence_stats": newRoute(a.maxBody, a.presenceStats),
	}
	return a
}

// Routes adds the HTTP endpoints to mux: POST /api/publish, /api/broadcast,
// /api/batch, /api/history, /api/disconnect, /api/unsubscribe, /api/presence
// and /api/presence_stats, and GET or POST /api/info.
func (a *API) Routes(mux *http.ServeMux) {
	for path, rt := range a.posts {
		mux.HandleFunc("POST "+path, a.handler(rt))
	}
	mux.HandleFunc("POST /api/info", a.info)
	mux.HandleFunc("GET /api/info", a.info)
}

// errNoData refuses a publish or broadcast without data.
var errNoData = protocol.NewError(protocol.ErrBadRequest, "data is required")

// errNoClient refuses a disconnect without a client id or a user, or with
// both.
var errNoClient = protocol.NewError(protocol.ErrBadRequest, "exactly one of client and user is required")

// errNoUser refuses an unsubscribe without a user.
var errNoUser = protocol.NewError(protocol.ErrBadRequest, "user is required")
