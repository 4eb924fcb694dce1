package client

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configures a Client. Start from DefaultOptions, or pass Option
// functions to Dial.
type Options struct {
	// Token is sent in the connect command. Defaults to none.
	Token string
	// TokenFunc, when set, is called for a token before every connection
	// attempt (an error fails the attempt, which is retried after the
	// reconnect delay) and before the token expires, when the connect or
	// refresh result says it does: the client then sends refresh with the
	// new token. It overrides Token. Defaults to none.
	TokenFunc func(ctx context.Context) (string, error)
	// Header is added to the WebSocket handshake request. Defaults to none.
	Header http.Header
	// HTTPClient performs the WebSocket handshake; its Transport dials the
	// connection. Defaults to http.DefaultClient.
	HTTPClient *http.Client
	// DialTimeout bounds one connection attempt (TCP, handshake and the connect
	// command). Defaults to 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write to the connection; a write that takes longer
	// breaks the connection. Defaults to 10s.
	WriteTimeout time.Duration
	// ReconnectDelay returns how long to wait before reconnect attempt number
	// attempt (0 for the first after a connection broke). Defaults to
	// Backoff(100*time.Millisecond, 10*time.Second).
	ReconnectDelay func(attempt int) time.Duration
	// PingTimeout is how long past the server's ping interval (announced in the
	// connect result) the client waits for any frame before it declares the
	// connection dead and reconnects. Defaults to 10s.
	PingTimeout time.Duration
	// ReadLimit caps one message from the server, in bytes. Defaults to 4 MiB.
	ReadLimit int64
	// OnEvent is called on connection and subscription events; see the package
	// doc for the goroutines it is called from. It must not call Close.
	// Defaults to none.
	OnEvent func(Event)
	// Logger receives the client's logs. Defaults to discarding them.
	Logger *slog.Logger
}

// DefaultOptions returns a new Options with every default filled in.
func DefaultOptions() Options {
	return Options{
		HTTPClient:     http.DefaultClient,
		DialTimeout:    10 * time.Second,
		WriteTimeout:   10 * time.Second,
		ReconnectDelay: Backoff(100*time.Millisecond, 10*time.Second),
		PingTimeout:    10 * time.Second,
		ReadLimit:      4 << 20,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

// validate reports the first field that cannot work.
func (o *Options) validate() error {
	switch {
	case o.HTTPClient == nil:
		return badOption("nil HTTP client")
	case o.DialTimeout <= 0:
		return badOption("dial timeout must be positive, not %v", o.DialTimeout)
	case o.WriteTimeout <= 0:
		return badOption("write timeout must be positive, not %v", o.WriteTimeout)
	case o.ReconnectDelay == nil:
		return badOption("nil reconnect delay function")
	case o.PingTimeout <= 0:
		return badOption("ping timeout must be positive, not %v", o.PingTimeout)
	case o.ReadLimit < 128:
		return badOption("read limit must be at least 128 bytes, not %d", o.ReadLimit)
	case o.Logger == nil:
		return badOption("nil logger")
	}
	return nil
}

// Dial is the package's Dial with o as the options.
func (o Options) Dial(ctx context.Context, url string) (*Client, error) {
	return dial(ctx, url, o)
}

// Option sets one field of Options; it returns an error for an invalid value.
type Option func(*Options) error

func badOption(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadOption, fmt.Sprintf(format, args...))
}

// WithToken sets Options.Token.
func WithToken(token string) Option {
	return func(o *Options) error { o.Token = token; return nil }
}

// WithTokenFunc sets Options.TokenFunc.
func WithTokenFunc(f func(ctx context.Context) (string, error)) Option {
	return func(o *Options) error { o.TokenFunc = f; return nil }
}

// WithHeader sets Options.Header.
func WithHeader(h http.Header) Option {
	return func(o *Options) error { o.Header = h; return nil }
}

// WithHTTPClient sets Options.HTTPClient.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *Options) error {
		if hc == nil {
			return badOption("nil HTTP client")
		}
		o.HTTPClient = hc
		return nil
	}
}

// WithDialer makes the client open its TCP connections with dial (for
// instance a net.Dialer's DialContext, or a function that keeps the net.Conn it
// returns). It replaces Options.HTTPClient with one whose transport uses dial.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *Options) error {
		if dial == nil {
			return badOption("nil dial function")
		}
		o.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: dial, ForceAttemptHTTP2: false}}
		return nil
	}
}

// WithDialTimeout sets Options.DialTimeout.
func WithDialTimeout(d time.Duration) Option {
	return func(o *Options) error {
		if d <= 0 {
			return badOption("dial timeout must be positive, not %v", d)
		}
		o.DialTimeout = d
		return nil
	}
}

// WithWriteTimeout sets Options.WriteTimeout.
func WithWriteTimeout(d time.Duration) Option {
	return func(o *Options) error {
		if d <= 0 {
			return badOption("write timeout must be positive, not %v", d)
		}
		o.WriteTimeout = d
		return nil
	}
}

// WithReconnectDelay sets Options.ReconnectDelay.
func WithReconnectDelay(delay func(attempt int) time.Duration) Option {
	return func(o *Options) error {
		if delay == nil {
			return badOption("nil reconnect delay function")
		}
		o.ReconnectDelay = delay
		return nil
	}
}

// WithBackoff sets Options.ReconnectDelay to Backoff(base, limit).
func WithBackoff(base, limit time.Duration) Option {
	return func(o *Options) error {
		if base <= 0 || limit < base {
			return badOption("backoff needs 0 < base <= limit, not %v and %v", base, limit)
		}
		o.ReconnectDelay = Backoff(base, limit)
		return nil
	}
}

// WithPingTimeout sets Options.PingTimeout.
func WithPingTimeout(d time.Duration) Option {
	return func(o *Options) error {
		if d <= 0 {
			return badOption("ping timeout must be positive, not %v", d)
		}
		o.PingTimeout = d
		return nil
	}
}

// WithReadLimit sets Options.ReadLimit.
func WithReadLimit(n int64) Option {
	return func(o *Options) error {
		if n < 128 {
			return badOption("read limit must be at least 128 bytes, not %d", n)
		}
		o.ReadLimit = n
		return nil
	}
}

// WithEventHandler sets Options.OnEvent.
func WithEventHandler(f func(Event)) Option {
	return func(o *Options) error { o.OnEvent = f; return nil }
}

// WithLogger sets Options.Logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *Options) error {
		if l == nil {
			return badOption("nil logger")
		}
		o.Logger = l
		return nil
	}
}
