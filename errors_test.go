package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestNodeErrors: each refusal of the embedder's API matches its sentinel with
// errors.Is and, when it is a protocol refusal, holds its *protocol.Error.
func TestNodeErrors(t *testing.T) {
	cfg := tether.Config{MaxChannels: 1, HistorySize: 1}
	n := tethertest.NewNode(t, cfg)
	ctx := context.Background()
	if _, err := n.Publish(ctx, "only", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		call func() error
		want error
		code string // of the *protocol.Error in the chain; "" for none
	}{
		{"publish: bad channel", func() error {
			_, err := n.Publish(ctx, "a b", json.RawMessage(`1`))
			return err
		}, tether.ErrInvalidChannel, protocol.ErrInvalidChannel},
		{"publish: not JSON", func() error {
			_, err := n.Publish(ctx, "only", json.RawMessage(`{`))
			return err
		}, tether.ErrBadRequest, protocol.ErrBadRequest},
		{"publish: one channel too many", func() error {
			_, err := n.Publish(ctx, "second", json.RawMessage(`1`))
			return err
		}, tether.ErrTooManyChannels, protocol.ErrTooManyChans},
		{"publish: context ended", func() error {
			_, err := n.Publish(cancelled, "a b", json.RawMessage(`{`)) // ctx is checked first
			return err
		}, context.Canceled, ""},
		{"broadcast: no channels", func() error {
			_, err := n.Broadcast(ctx, nil, json.RawMessage(`1`))
			return err
		}, tether.ErrBadRequest, protocol.ErrBadRequest},
		{"broadcast: too many channels", func() error {
			_, err := n.Broadcast(ctx, make([]string, tether.MaxBroadcastChannels+1), json.RawMessage(`1`))
			return err
		}, tether.ErrBadRequest, protocol.ErrBadRequest},
		{"broadcast: context ended", func() error {
			_, err := n.Broadcast(cancelled, []string{"only"}, json.RawMessage(`1`))
			return err
		}, context.Canceled, ""},
		{"history: bad channel", func() error {
			_, err := n.History(ctx, "", nil, 0)
			return err
		}, tether.ErrInvalidChannel, protocol.ErrInvalidChannel},
		{"history: negative limit", func() error {
			_, err := n.History(ctx, "only", nil, -1)
			return err
		}, tether.ErrBadRequest, protocol.ErrBadRequest},
		{"history: context ended", func() error {
			_, err := n.History(cancelled, "only", nil, 0)
			return err
		}, context.Canceled, ""},
		{"disconnect: no such client", func() error { return n.Disconnect(ctx, "nobody", false) }, tether.ErrNoClient, ""},
		{"disconnect: context ended", func() error { return n.Disconnect(cancelled, "nobody", false) }, context.Canceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			var perr *protocol.Error
			if got := errors.As(err, &perr); got != (tt.code != "") || got && perr.Code != tt.code {
				t.Fatalf("error %v: protocol error %v, want code %q", err, perr, tt.code)
			}
			if tt.code != "" && !strings.HasPrefix(err.Error(), "tether: "+tt.code+": ") {
				t.Fatalf("message %q, want it to start with tether: %s:", err, tt.code)
			}
		})
	}
	res, err := n.Broadcast(ctx, []string{"only", "second"}, json.RawMessage(`2`))
	if err != nil || res[0].Error != nil || res[1].Error == nil || res[1].Error.Code != protocol.ErrTooManyChans {
		t.Fatalf("broadcast over the channel limit: %+v, %v", res, err)
	}

	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := n.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"publish":   func() error { _, err := n.Publish(ctx, "only", json.RawMessage(`1`)); return err },
		"broadcast": func() error { _, err := n.Broadcast(ctx, []string{"only"}, json.RawMessage(`1`)); return err },
		"history":   func() error { _, err := n.History(ctx, "only", nil, 0); return err },
	} {
		if err := call(); !errors.Is(err, tether.ErrClosed) {
			t.Errorf("%s after Shutdown: %v, want ErrClosed", name, err)
		}
	}
	if _, err := n.Publish(cancelled, "only", json.RawMessage(`1`)); !errors.Is(err, context.Canceled) {
		t.Errorf("publish after Shutdown with an ended context: %v, want the context's error first", err)
	}
}

// TestPublishFrom: the option sets the publication's from, as subscribers and
// history see it.
func TestPublishFrom(t *testing.T) {
	n := tethertest.NewNode(t, tether.Config{HTTPAddr: tethertest.Loopback})
	c := dial(t, n)
	c.subscribe("news")
	ctx := context.Background()
	if _, err := n.Publish(ctx, "news", json.RawMessage(`1`), tether.PublishFrom(protocol.ClientInfo{User: "ann"})); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Publish(ctx, "news", json.RawMessage(`2`)); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, b, err := c.c.Read(rctx)
	var first protocol.Publication
	if err != nil || json.Unmarshal(b, &first) != nil || first.From == nil || first.From.User != "ann" {
		t.Fatalf("first pub %s, %v: want from user ann", b, err)
	}
	h, err := n.History(ctx, "news", nil, 0)
	if err != nil || len(h.Publications) != 2 || h.Publications[0].From.User != "ann" || h.Publications[1].From != nil {
		t.Fatalf("history: %+v, %v", h, err)
	}
}
