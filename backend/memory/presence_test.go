package memory_test

import (
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
)

func newPresence(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
	p := memory.NewPresence(memory.PresenceConfig{TTL: cfg.TTL, Now: cfg.Now})
	t.Cleanup(func() { closeBackend(t, p) })
	return p
}

func TestPresenceContract(t *testing.T) {
	backendtest.TestPresence(t, backendtest.PresenceSuite{New: newPresence, ReadsClock: true})
}

// TestPresenceContractRealTime runs the suite as it runs a store that keeps
// real time, so that the suite's waiting path is itself tested.
func TestPresenceContractRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for real TTLs")
	}
	t.Parallel()
	backendtest.TestPresence(t, backendtest.PresenceSuite{
		New: func(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
			cfg.Now = nil
			return newPresence(t, cfg)
		},
	})
}
