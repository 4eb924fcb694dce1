package client

import "errors"

// Errors returned by the client. Test for them with errors.Is.
var (
	// ErrClosed is returned by calls on a closed Client or Subscription.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost is returned by a call whose connection broke before the
	// reply came: the command may or may not have reached the server.
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrDisconnected is the reason the client stopped when the server told it
	// not to reconnect (a disconnect push with reconnect:false).
	ErrDisconnected = errors.New("client: disconnected by server")
	// ErrSubscribed is returned by Subscribe for a channel already subscribed.
	ErrSubscribed = errors.New("client: already subscribed")
	// ErrUnsubscribed is the reason a subscription ended when the server
	// ended it (an unsubscribe push from the server API).
	ErrUnsubscribed = errors.New("client: unsubscribed by server")
	// ErrBadOption is returned by Dial for an option with an invalid value.
	ErrBadOption = errors.New("client: invalid option")
)
