package tether_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestNamespaceHistory: a namespace's history_size and recover apply to its
// channels, over every transport, and the node's settings to the others.
func TestNamespaceHistory(t *testing.T) {
	two, zero, off := 2, 0, false
	hour := time.Hour
	z, err := namespaces.New(namespaces.Open, []namespaces.Namespace{
		{Name: "short", HistorySize: &two, HistoryTTL: &hour},
		{Name: "none", HistorySize: &zero},
		{Name: "norec", Recover: &off},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.HistorySize, cfg.Authorizer, cfg.ChannelHistory = 10, z, z.History
	e := startEnv(t, cfg, false)

	tops := map[string]protocol.Position{}
	for _, ch := range []string{"short:a", "none:a", "norec:a", "plain"} {
		for i := range 5 {
			p, err := e.n.Publish(context.Background(), ch, json.RawMessage(fmt.Sprint(i)))
			if err != nil {
				t.Fatal(err)
			}
			tops[ch] = p
		}
	}
	tests := []struct {
		channel     string
		since       uint64 // recover after this offset
		recoverable bool
		recovered   bool
		pubs        int // in the subscribe reply
		history     int // publications history returns
	}{
		{"short:a", 3, true, true, 2, 2},
		{"short:a", 1, true, false, 0, 2}, // 2 and 3 are gone
		{"none:a", 4, false, false, 0, 0},
		{"norec:a", 3, false, false, 0, 5}, // kept (history reads them), not recovered
		{"norec:a", 5, false, false, 0, 5},
		{"plain", 1, true, true, 4, 5},
	}
	for _, c := range e.dialAll() {
		for _, tt := range tests {
			name := fmt.Sprintf("%s: %s since %d", c.name, tt.channel, tt.since)
			res := c.subscribe(tt.channel, &protocol.Position{Epoch: tops[tt.channel].Epoch, Offset: tt.since})
			if res.Recoverable != tt.recoverable || res.Recovered != tt.recovered || len(res.Publications) != tt.pubs || res.Offset != 5 {
				t.Errorf("%s: subscribe reply %+v, want recoverable %v, recovered %v, %d publications, offset 5",
					name, res, tt.recoverable, tt.recovered, tt.pubs)
			}
			m := c.call(protocol.Command{Op: protocol.OpUnsubscribe, Channel: tt.channel})
			if m.Error != nil {
				t.Fatalf("%s: unsubscribe: %v", name, m.Error)
			}
			m = c.call(protocol.Command{Op: protocol.OpHistory, Channel: tt.channel})
			var h protocol.HistoryResult
			if m.Error != nil || json.Unmarshal(m.Result, &h) != nil || len(h.Publications) != tt.history {
				t.Errorf("%s: history %s %v, want %d publications", name, m.Result, m.Error, tt.history)
			}
		}
	}
}

// TestChannelHistoryOtherStore: with a history the node did not make (NATS's,
// or the embedder's), per-channel sizes cannot apply: New says so in its log,
// and recover still applies.
func TestChannelHistoryOtherStore(t *testing.T) {
	off := false
	z, err := namespaces.New(namespaces.Open, []namespaces.Namespace{{Name: "norec", Recover: &off}})
	if err != nil {
		t.Fatal(err)
	}
	h := memory.NewHistory(memory.HistoryConfig{Size: 10})
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	var logs bytes.Buffer
	cfg := tethertest.Config()
	cfg.Authorizer, cfg.ChannelHistory, cfg.Backends.History = z, z.History, h
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	e := startEnv(t, cfg, false)
	if !strings.Contains(logs.String(), "apply to the memory history only") {
		t.Fatalf("no warning in the log:\n%s", logs.String())
	}
	epochs := map[string]string{}
	for _, ch := range []string{"norec:a", "plain"} {
		p, err := e.n.Publish(context.Background(), ch, json.RawMessage(`1`))
		if err != nil {
			t.Fatal(err)
		}
		epochs[ch] = p.Epoch
	}
	c := e.dialTCP()
	if res := c.subscribe("norec:a", &protocol.Position{Epoch: epochs["norec:a"]}); res.Recoverable || res.Recovered {
		t.Errorf("norec:a: %+v, want recovery off", res)
	}
	if res := c.subscribe("plain", &protocol.Position{Epoch: epochs["plain"]}); !res.Recoverable || !res.Recovered || len(res.Publications) != 1 {
		t.Errorf("plain: %+v, want recovered with 1 publication", res)
	}
}
