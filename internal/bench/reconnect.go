package bench

import (
	"context"
	"errors"
)

// ErrNotImplemented is returned by benchmarks that cannot run yet.
var ErrNotImplemented = errors.New("bench: not implemented yet")

// Reconnect is to make N subscribed clients lose their connections at once
// while publishing goes on, and report the time until every one has
// resubscribed with recovery, with the lost and duplicated counts.
//
// TODO: it needs the Go client's reconnect-with-recovery (package client, on
// another branch) so that it measures what users run rather than a
// reimplementation in this package.
func Reconnect(context.Context, Target) error {
	return errors.Join(ErrNotImplemented, errors.New(
		"reconnect needs the Go client with reconnect and recovery (package client), which has not landed"))
}
