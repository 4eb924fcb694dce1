package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Version is the protocol version this package speaks.
const Version = 1

// Ops a client may send.
const (
	OpConnect     = "connect"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpPublish     = "publish"
	OpHistory     = "history"
	OpPing        = "ping"
	OpPong        = "pong"
	OpRefresh     = "refresh"
)

// Ops of the pushes the server sends without being asked.
const (
	PushPub        = "pub"
	PushDisconnect = "disconnect"
	PushPing       = "ping"
	// PushUnsubscribe tells a client the server ended one of its
	// subscriptions (Unsubscribe).
	PushUnsubscribe = "unsubscribe"
)

// Position names a place in a channel's stream: the epoch of its history and an
// offset within it.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Command is one request from a client. Fields an op does not use are ignored.
type Command struct {
	// ID is echoed in the reply. Zero means the client does not correlate replies.
	ID uint64 `json:"id,omitempty"`
	// Op is the operation: one of the Op constants.
	Op string `json:"op"`
	// Channel is the channel for subscribe, unsubscribe, publish and history.
	Channel string `json:"channel,omitempty"`
	// Data is the payload of publish: any JSON value.
	Data json.RawMessage `json:"data,omitempty"`
	// Token is the credential of connect and refresh, and the subscription
	// token of subscribe.
	Token string `json:"token,omitempty"`
	// Recover asks subscribe to deliver what was published after this position.
	Recover *Position `json:"recover,omitempty"`
	// Since asks history for publications after this position (offset 0: from the oldest kept).
	Since *Position `json:"since,omitempty"`
	// Limit caps the publications history returns (0: the server's maximum).
	Limit int `json:"limit,omitempty"`
}

// ClientInfo says who published a publication.
type ClientInfo struct {
	Client string `json:"client,omitempty"`
	User   string `json:"user,omitempty"`
	// Info is what the publisher's credentials say about it (any JSON).
	Info json.RawMessage `json:"info,omitempty"`
}

// Publication is one message in a channel, as pushed to subscribers and as
// returned by history and recovery.
type Publication struct {
	Op      string          `json:"op,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Epoch   string          `json:"epoch,omitempty"`
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data"`
	From    *ClientInfo     `json:"from,omitempty"`

	raw []byte // the encoding, once Encode ran
}

// Error is the error member of a reply. It implements error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Error codes of replies. docs/protocol.md says when each is sent.
const (
	ErrBadRequest     = "bad_request"
	ErrUnknownOp      = "unknown_op"
	ErrInvalidChannel = "invalid_channel"
	ErrTooManySubs    = "too_many_subscriptions"
	ErrTooManyChans   = "too_many_channels"
	ErrAlreadySub     = "already_subscribed"
	ErrNotSubscribed  = "not_subscribed"
	ErrUnauthorized   = "unauthorized"
	ErrTokenExpired   = "token_expired"
	ErrTooManyConns   = "too_many_connections"
	ErrPermission     = "permission_denied"
	ErrRateLimited    = "rate_limited"
	ErrUnavailable    = "unavailable"
	ErrInternal       = "internal"
)

// NewError returns a reply error with the given code and formatted message.
func NewError(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Reply answers one command: exactly one of Result and Error is set.
type Reply struct {
	ID     uint64 `json:"id,omitempty"`
	Result any    `json:"result,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// SubscribeResult is the result of subscribe.
type SubscribeResult struct {
	Epoch       string `json:"epoch"`
	Offset      uint64 `json:"offset"`
	Recoverable bool   `json:"recoverable"`
	// Recovered says whether Publications hold everything published after
	// the position the subscribe asked to recover from. It is on the wire
	// (true or false) exactly when the subscribe asked to recover: see
	// Recovering.
	Recovered    bool           `json:"recovered"`
	Publications []*Publication `json:"publications,omitempty"`
	// Recovering marks a result to a subscribe that asked to recover; without
	// it, Recovered is left out of the encoding.
	Recovering bool `json:"-"`
}

// MarshalJSON encodes r, with recovered only when the subscribe asked to
// recover.
func (r *SubscribeResult) MarshalJSON() ([]byte, error) {
	type plain SubscribeResult
	if r.Recovering || r.Recovered {
		return json.Marshal((*plain)(r))
	}
	return json.Marshal(&struct {
		*plain
		Recovered bool `json:"recovered,omitempty"`
	}{plain: (*plain)(r)})
}

// PublishResult is the result of publish: the position given to the publication.
type PublishResult = Position

// HistoryResult is the result of history: publications oldest first and the
// channel's current position.
type HistoryResult struct {
	Epoch        string         `json:"epoch"`
	Offset       uint64         `json:"offset"`
	Publications []*Publication `json:"publications"`
}

// ConnectResult is the result of connect.
type ConnectResult struct {
	Client string `json:"client"`
	// User is the authenticated user; empty for an anonymous connection.
	User    string `json:"user,omitempty"`
	Version int    `json:"version"`
	// Ping is the server's ping interval in seconds (0: the server does not ping).
	Ping int `json:"ping,omitempty"`
	Expiry
}

// Expiry says when a connection's credentials expire; both fields are zero
// when they do not. A client sends refresh with a fresh token before then.
type Expiry struct {
	// Expires is the expiry in Unix seconds.
	Expires int64 `json:"expires,omitempty"`
	// TTL is the expiry in seconds from now.
	TTL int64 `json:"ttl,omitempty"`
}

// RefreshResult is the result of refresh.
type RefreshResult = Expiry

// Unsubscribe is the unsubscribe push: the server ended a subscription.
type Unsubscribe struct {
	Op      string `json:"op"`
	Channel string `json:"channel"`
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
}

// Codes of the unsubscribe push.
const (
	// UnsubscribeServer: the server API unsubscribed the user.
	UnsubscribeServer = 2000
)

// Disconnect is the disconnect push: why the server is closing the connection and
// whether the client should reconnect. The same code closes the WebSocket.
type Disconnect struct {
	Op        string `json:"op"`
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Reconnect bool   `json:"reconnect"`
}

// Close codes. 1000-1011 are RFC 6455's; 4000-4499 are tether's and mean the
// client should reconnect; 4500-4999 are tether's and mean it should not.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	CloseInvalidPayload  = 1007
	ClosePolicyViolation = 1008
	CloseTooBig          = 1009
	CloseInternal        = 1011

	CloseSlowConsumer     = 4001
	CloseHeartbeatTimeout = 4002
	CloseForceReconnect   = 4003
	CloseTokenExpired     = 4004
	CloseConnectTimeout   = 4005
	CloseTooManyConns     = 4006
	CloseForceDisconnect  = 4500
	CloseUnauthorized     = 4501
	CloseBadRequest       = 4502
)

// Standard disconnects.
var (
	DisconnectShutdown         = Disconnect{Op: PushDisconnect, Code: CloseGoingAway, Reason: "server shutting down", Reconnect: true}
	DisconnectSlowConsumer     = Disconnect{Op: PushDisconnect, Code: CloseSlowConsumer, Reason: "slow consumer", Reconnect: true}
	DisconnectHeartbeatTimeout = Disconnect{Op: PushDisconnect, Code: CloseHeartbeatTimeout, Reason: "no heartbeat", Reconnect: true}
	DisconnectForceReconnect   = Disconnect{Op: PushDisconnect, Code: CloseForceReconnect, Reason: "disconnected by server", Reconnect: true}
	DisconnectForce            = Disconnect{Op: PushDisconnect, Code: CloseForceDisconnect, Reason: "disconnected by server", Reconnect: false}
	DisconnectTokenExpired     = Disconnect{Op: PushDisconnect, Code: CloseTokenExpired, Reason: "token_expired", Reconnect: true}
	DisconnectConnectTimeout   = Disconnect{Op: PushDisconnect, Code: CloseConnectTimeout, Reason: "no connect in time", Reconnect: true}
	DisconnectUnauthorized     = Disconnect{Op: PushDisconnect, Code: CloseUnauthorized, Reason: "unauthorized", Reconnect: false}
	DisconnectTooManyConns     = Disconnect{Op: PushDisconnect, Code: CloseTooManyConns, Reason: "too many connections for this user", Reconnect: true}
)

// DecodeCommand parses one command. On error the returned command still carries
// the id when it could be read, so the error reply can name it; the error is
// then a *Error with code bad_request.
func DecodeCommand(data []byte) (*Command, error) {
	var c Command
	if !utf8.Valid(data) {
		return &c, NewError(ErrBadRequest, "command is not valid UTF-8")
	}
	if !decodeFlat(data, &c) { // an uncommon shape: encoding/json decodes it
		c = Command{}
		if err := json.Unmarshal(data, &c); err != nil {
			return decodeError(&c, err)
		}
	}
	if c.Op == "" {
		return &c, NewError(ErrBadRequest, "missing op")
	}
	return &c, nil
}

// decodeError turns json.Unmarshal's error into a bad_request.
func decodeError(c *Command, err error) (*Command, error) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return c, NewError(ErrBadRequest, "field %q must be a %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	// A syntax error leaves c partly filled: trust nothing from it.
	return &Command{}, NewError(ErrBadRequest, "malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "uint64", "int", "int64", "uint", "uint32", "int32":
		return "number"
	case "ptr", "struct":
		return "object"
	}
	return k
}

// Encode sets Op to "pub" and returns the JSON of the pub push. The result is
// kept: later calls, and MarshalJSON, return the same bytes, so a publication is
// encoded once however many replies and pushes carry it. Do not change p after.
// The bytes are json.Marshal's for p's fields. Data and From.Info must be JSON:
// Encode checks them and fails as json.Marshal does, although the server's own
// publishers have checked data already (docs/decisions/publication-encoder.md).
func (p *Publication) Encode() ([]byte, error) {
	if p.raw != nil {
		return p.raw, nil
	}
	p.Op = PushPub
	b, err := appendPublication(nil, p)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode publication: %w", err)
	}
	p.raw = b
	return b, nil
}

// MarshalJSON returns the bytes Encode returned, or encodes p afresh.
func (p *Publication) MarshalJSON() ([]byte, error) {
	if p.raw != nil {
		return p.raw, nil
	}
	b, err := appendPublication(nil, p)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// ValidateChannel checks a channel name: 1 to maxLen bytes of UTF-8 with no
// spaces or control characters.
func ValidateChannel(name string, maxLen int) *Error {
	if name == "" {
		return NewError(ErrInvalidChannel, "channel is required")
	}
	if len(name) > maxLen {
		return NewError(ErrInvalidChannel, "channel is longer than %d bytes", maxLen)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError {
			return NewError(ErrInvalidChannel, "channel has a space, a control character or invalid UTF-8")
		}
	}
	return nil
}
