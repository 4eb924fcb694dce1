package nats_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

// TestMaxChannels checks the history refuses a channel past MaxChannels, on
// Append and on Read, from the node that created the others and from
// another, and still serves the channels it holds.
func TestMaxChannels(t *testing.T) {
	srv := startServer(t)
	cfg := namespace(srv.URL())
	cfg.MaxChannels = 3
	h := open(t, cfg).History()
	ctx := context.Background()
	appendTo := func(h backend.History, channel string) error {
		_, err := h.Append(ctx, &protocol.Publication{Channel: channel, Data: json.RawMessage(`1`)})
		return err
	}
	for _, ch := range []string{"a", "b"} {
		if err := appendTo(h, ch); err != nil {
			t.Fatalf("Append(%s): %v", ch, err)
		}
	}
	if _, err := h.Read(ctx, "c", backend.Query{}); err != nil { // a Read creates it too: its epoch
		t.Fatalf("Read(c): %v", err)
	}
	other := open(t, cfg).History()
	for name, h := range map[string]backend.History{"this node": h, "another node": other} {
		if err := appendTo(h, "d"); !errors.Is(err, backend.ErrTooManyChannels) {
			t.Errorf("%s: Append to a 4th channel: %v, want ErrTooManyChannels", name, err)
		}
		if _, err := h.Read(ctx, "e", backend.Query{}); !errors.Is(err, backend.ErrTooManyChannels) {
			t.Errorf("%s: Read of a 4th channel: %v, want ErrTooManyChannels", name, err)
		}
		if err := appendTo(h, "a"); err != nil {
			t.Errorf("%s: Append to a channel held: %v", name, err)
		}
		if _, err := h.Read(ctx, "c", backend.Query{}); err != nil {
			t.Errorf("%s: Read of a channel held: %v", name, err)
		}
	}
}
