package memory_test

import (
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
)

func TestBrokerContract(t *testing.T) {
	backendtest.TestBroker(t, backendtest.BrokerSuite{
		New: func(*testing.T) backend.Broker { return memory.NewBroker() },
	})
}
