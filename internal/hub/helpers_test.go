package hub

import (
	"context"
	"testing"

	"github.com/tetherhq/tether/backend/memory"
)

var ctx = context.Background()

// newHub returns a hub on memory backends, closed when the test ends.
func newHub(t testing.TB, hc memory.HistoryConfig, cfg Config) *Hub {
	t.Helper()
	hist := memory.NewHistory(hc)
	cfg.Broker, cfg.History = memory.NewBroker(), hist
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = hist.Close(context.Background())
	})
	return h
}
