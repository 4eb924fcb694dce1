// Package client is the Go client of tether's protocol (see docs/protocol.md and
// docs/recovery.md). It keeps one WebSocket connection to a tether server,
// reconnects with exponential backoff and full jitter when the connection breaks,
// resubscribes every channel with recovery from the last offset it delivered,
// and drops duplicates by offset, so that a subscription's handler sees each
// publication once and in order within the server's history window. When the
// server cannot fill a gap (its history moved on, or it restarted) the
// subscription gets a Gap event and the application should reload its state.
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws")
//	if err != nil { ... }
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat:lobby", func(p *protocol.Publication) {
//		fmt.Println(p.Offset, string(p.Data))
//	})
//	...
//	pos, err := c.Publish(ctx, "chat:lobby", json.RawMessage(`{"text":"hi"}`))
//
// # Tokens
//
// On a server that authenticates, WithToken sends a fixed token in connect;
// WithTokenFunc asks for one before every connection attempt and, when the
// server says the token expires, again a little before that, to send it in a
// refresh command: the connection and its subscriptions go on. A client that
// misses the expiry is disconnected (token_expired), reconnects with a fresh
// token and recovers. A server API unsubscribe ends a subscription with an
// Unsubscribed event and ErrUnsubscribed.
//
// # Concurrency
//
// All methods of Client and Subscription are safe for concurrent use by many
// goroutines. Every method that waits for the server takes a context; when that
// context ends the call returns its error, and the connection is left alone
// (a cancelled call never closes the connection or another call's reply).
//
// Each subscription runs its handler on a goroutine of its own, one publication
// at a time, in offset order; different subscriptions' handlers run
// concurrently. A handler may call any method of the Client, including
// Unsubscribe and Close. Publications are queued for a handler without bound,
// so a handler that never returns holds memory; a slow handler does not slow
// the connection or other subscriptions.
//
// Events (Options.OnEvent) come from the client's goroutines and may be called
// concurrently: Connected, Disconnected and Unsubscribed from the connection's
// goroutine; Recovered and Gap from the subscription's own goroutine, before
// the publications that follow them. OnEvent must not block for long (the
// connection's goroutine waits for it) and must not call Close itself: Close
// waits for the connection's goroutine (start a goroutine for it instead).
//
// Close ends the connection and every subscription; a handler running at that
// moment finishes, and publications still queued are dropped.
package client
