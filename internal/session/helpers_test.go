package session

import (
	"context"
	"testing"

	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/internal/hub"
)

// newHub returns a hub on memory backends, closed when the test ends.
func newHub(t testing.TB, hc memory.HistoryConfig, cfg hub.Config) *hub.Hub {
	t.Helper()
	hist := memory.NewHistory(hc)
	cfg.Broker, cfg.History, cfg.Recoverable = memory.NewBroker(), hist, hc.Size > 0
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		_ = hist.Close(context.Background())
	})
	return h
}
