package nats_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	tnats "github.com/tetherhq/tether/backend/nats"
	"github.com/tetherhq/tether/backend/nats/embedded"
)

// startServer starts an in-process NATS server with JetStream for one test.
func startServer(t testing.TB) *embedded.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

var namespaces atomic.Int64

// namespace returns a Config of its own subjects and stream on url.
func namespace(url string) tnats.Config {
	n := namespaces.Add(1)
	return tnats.Config{URL: url, Prefix: fmt.Sprintf("t%d", n), Stream: fmt.Sprintf("T%d", n), HistorySize: 10, MemoryStorage: true}
}

// open opens a Backend closed when t ends.
func open(t testing.TB, cfg tnats.Config) *tnats.Backend {
	t.Helper()
	b, err := tnats.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

func TestBrokerContract(t *testing.T) {
	srv := startServer(t)
	cfgs := map[backend.Broker]tnats.Config{}
	backendtest.TestBroker(t, backendtest.BrokerSuite{
		New: func(t *testing.T) backend.Broker {
			cfg := namespace(srv.URL())
			br := open(t, cfg).Broker()
			cfgs[br] = cfg
			return br
		},
		Peer: func(t *testing.T, b backend.Broker) backend.Broker {
			return open(t, cfgs[b]).Broker()
		},
	})
}

func TestHistoryContract(t *testing.T) {
	srv := startServer(t)
	newCfg := func(cfg backendtest.HistoryConfig) tnats.Config {
		c := namespace(srv.URL())
		c.HistorySize, c.HistoryTTL, c.MemoryStorage = cfg.Size, cfg.TTL, false
		return c
	}
	cfgs := map[backend.History]tnats.Config{}
	backendtest.TestHistory(t, backendtest.HistorySuite{
		New: func(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
			c := newCfg(cfg)
			h := open(t, c).History()
			cfgs[h] = c
			return h
		},
		Restart: func(t *testing.T, h backend.History, _ backendtest.HistoryConfig) backend.History {
			c := cfgs[h]
			if err := h.(backend.Closer).Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, c).History()
		},
	})
}

func TestPresenceContract(t *testing.T) {
	srv := startServer(t)
	backendtest.TestPresence(t, backendtest.PresenceSuite{
		New: func(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
			c := namespace(srv.URL())
			c.PresenceTTL = cfg.TTL
			return open(t, c).Presence()
		},
	})
}
