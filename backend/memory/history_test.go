package memory_test

import (
	"context"
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
)

// newHistory returns a memory History with the suite's configuration, closed
// when t ends.
func newHistory(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
	h := memory.NewHistory(memory.HistoryConfig{Size: cfg.Size, TTL: cfg.TTL, Now: cfg.Now})
	t.Cleanup(func() { closeBackend(t, h) })
	return h
}

func closeBackend(t *testing.T, c backend.Closer) {
	t.Helper()
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestHistoryContract(t *testing.T) {
	backendtest.TestHistory(t, backendtest.HistorySuite{
		New:        newHistory,
		ReadsClock: true,
		Restart: func(t *testing.T, h backend.History, cfg backendtest.HistoryConfig) backend.History {
			closeBackend(t, h.(backend.Closer))
			return newHistory(t, cfg)
		},
	})
}

// TestHistoryContractRealTime runs the suite as it runs a store that keeps
// real time, so that the suite's waiting path is itself tested.
func TestHistoryContractRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real TTLs")
	}
	t.Parallel()
	backendtest.TestHistory(t, backendtest.HistorySuite{
		New: func(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
			cfg.Now = nil
			return newHistory(t, cfg)
		},
	})
}
