package backendtest_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
)

// A mutant is an implementation with one bug, and the subtest of its suite
// that must find it.
type mutant struct {
	fails string // the subtest that must fail
	run   func(t *testing.T)
}

// tries are the runs the suite may take to find the bugs it finds by chance.
var tries = map[string]int{
	"presence/racy-first-tab":  5, // the Joins interleave by chance
	"broker/overlapping-nodes": 5, // the handler's calls overlap by chance
}

const mutantEnv = "BACKENDTEST_MUTANT"

// TestSuitesFindBugs runs each suite against each mutant in a child process
// and checks the suite fails, in the subtest that checks the broken promise.
func TestSuitesFindBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process per mutant")
	}
	for _, name := range slices.Sorted(maps.Keys(mutants)) {
		m := mutants[name]
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			var out []byte
			var err error
			for range max(tries[name], 1) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestMutant$", "-test.v", "-test.count=1", "-test.timeout=60s")
				cmd.Env = append(os.Environ(), mutantEnv+"="+name)
				if out, err = cmd.CombinedOutput(); err != nil {
					break
				}
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed mutant %s (err %v):\n%s", name, err, out)
			}
			if want := "--- FAIL: TestMutant/" + m.fails + " "; !strings.Contains(string(out), want) {
				t.Fatalf("mutant %s: the suite failed, but not in %s:\n%s", name, m.fails, out)
			}
		})
	}
}

// TestMutant runs one mutant's suite; TestSuitesFindBugs starts it.
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("run by TestSuitesFindBugs")
	}
	m, ok := mutants[name]
	if !ok {
		t.Fatalf("no mutant %q", name)
	}
	m.run(t)
}

var mutants = map[string]mutant{
	"history/hole-in-read": {"AppendPositionsAndRead", historyMutant(func(h backend.History) backend.History {
		return holeyHistory{h}
	}, nil)},
	"history/epoch-per-read": {"EmptyChannelAndEpochStability", historyMutant(func(h backend.History) backend.History {
		return restlessHistory{h}
	}, nil)},
	"history/ignores-limit": {"Window", historyMutant(func(h backend.History) backend.History {
		return limitlessHistory{h}
	}, nil)},
	"history/other-epoch-reads-nothing": {"Window", historyMutant(func(h backend.History) backend.History {
		return strictEpochHistory{h}
	}, nil)},
	"history/appends-when-canceled": {"Canceled", historyMutant(func(h backend.History) backend.History {
		return stubbornHistory{h}
	}, nil)},
	"history/no-ttl": {"TTL", historyMutant(nil, func(cfg *memory.HistoryConfig) { cfg.TTL = 0 })},
	"history/one-epoch-forever": {"Restart", historyMutant(func(h backend.History) backend.History {
		return &constantEpochHistory{History: h}
	}, nil)},

	"broker/duplicates": {"DeliverAfterSubscribe", brokerMutant(func(b *memory.Broker) backend.Broker {
		return &twiceBroker{Broker: b}
	})},
	"broker/loses-one": {"DeliverAfterSubscribe", brokerMutant(func(b *memory.Broker) backend.Broker {
		return &lossyBroker{Broker: b}
	})},
	"broker/reorders": {"DeliverAfterSubscribe", brokerMutant(func(b *memory.Broker) backend.Broker {
		return &reorderBroker{Broker: b}
	})},
	"broker/ignores-interest": {"NoInterestNoDelivery", brokerMutant(func(b *memory.Broker) backend.Broker {
		return &deafBroker{Broker: b}
	})},
	"broker/subscribes-twice": {"SubscribeTwice", brokerMutant(func(b *memory.Broker) backend.Broker {
		return &doubleSubBroker{Broker: b, subs: make(map[string]int)}
	})},
	"broker/publishes-when-canceled": {"Canceled", brokerMutant(func(b *memory.Broker) backend.Broker {
		return stubbornBroker{b}
	})},
	"broker/overlapping-nodes": {"AcrossNodes", func(t *testing.T) {
		backendtest.TestBroker(t, busSuite(true))
	}},

	"presence/counts-anonymous": {"AddAndStats", presenceMutant(func(p backend.Presence) backend.Presence {
		return anonCountingPresence{p}
	}, nil)},
	"presence/no-refresh": {"Expiry", presenceMutant(func(p backend.Presence) backend.Presence {
		return norefreshPresence{p}
	}, nil)},
	"presence/no-expiry": {"Expiry", presenceMutant(nil, func(cfg *memory.PresenceConfig) { cfg.TTL = time.Hour })},
	"presence/remove-absent-fails": {"Remove", presenceMutant(func(p backend.Presence) backend.Presence {
		return fussyPresence{p}
	}, nil)},
	"presence/every-tab-joins": {"TrackerJoinLeave", presenceMutant(func(p backend.Presence) backend.Presence {
		return everyTabPresence{p.(*memory.Presence)}
	}, nil)},
	"presence/racy-first-tab": {"TrackerConcurrentUsers", presenceMutant(func(p backend.Presence) backend.Presence {
		return racyPresence{p.(*memory.Presence)}
	}, nil)},
	"presence/refresh-adds": {"TrackerRefresh", presenceMutant(func(p backend.Presence) backend.Presence {
		return addingRefreshPresence{p.(*memory.Presence)}
	}, nil)},
}

// historyMutant returns a run of the history suite on memory stores,
// configured by configure and wrapped by wrap (either may be nil).
func historyMutant(wrap func(backend.History) backend.History, configure func(*memory.HistoryConfig)) func(*testing.T) {
	return func(t *testing.T) {
		newStore := func(t *testing.T, cfg backendtest.HistoryConfig) backend.History {
			mcfg := memory.HistoryConfig{Size: cfg.Size, TTL: cfg.TTL, Now: cfg.Now}
			if configure != nil {
				configure(&mcfg)
			}
			h := memory.NewHistory(mcfg)
			t.Cleanup(func() { _ = h.Close(context.Background()) })
			if wrap != nil {
				return wrap(h)
			}
			return h
		}
		backendtest.TestHistory(t, backendtest.HistorySuite{
			New:        newStore,
			ReadsClock: true,
			Restart: func(t *testing.T, h backend.History, cfg backendtest.HistoryConfig) backend.History {
				if c, ok := h.(*constantEpochHistory); ok { // the mutant that survives a restart
					return &constantEpochHistory{History: newStore(t, cfg).(*constantEpochHistory).History, inner: c.inner}
				}
				return newStore(t, cfg)
			},
		})
	}
}

// holeyHistory leaves out the second publication of every Read of three or more.
type holeyHistory struct{ backend.History }

func (h holeyHistory) Read(ctx context.Context, ch string, q backend.Query) (backend.Result, error) {
	res, err := h.History.Read(ctx, ch, q)
	if len(res.Publications) >= 3 {
		res.Publications = slices.Delete(res.Publications, 1, 2)
	}
	return res, err
}

// restlessHistory gives an empty channel a new epoch at every Read.
type restlessHistory struct{ backend.History }

func (h restlessHistory) Read(ctx context.Context, ch string, q backend.Query) (backend.Result, error) {
	res, err := h.History.Read(ctx, ch, q)
	if res.Top.Offset == 0 {
		res.Top.Epoch = time.Now().String()
	}
	return res, err
}

// limitlessHistory ignores a positive Limit.
type limitlessHistory struct{ backend.History }

func (h limitlessHistory) Read(ctx context.Context, ch string, q backend.Query) (backend.Result, error) {
	if q.Limit > 0 {
		q.Limit = backend.NoLimit
	}
	return h.History.Read(ctx, ch, q)
}

// strictEpochHistory returns nothing to a Since of another epoch.
type strictEpochHistory struct{ backend.History }

func (h strictEpochHistory) Read(ctx context.Context, ch string, q backend.Query) (backend.Result, error) {
	res, err := h.History.Read(ctx, ch, q)
	if q.Since != nil && q.Since.Epoch != res.Top.Epoch {
		res.Publications = nil
	}
	return res, err
}

// stubbornHistory appends with a context that is never cancelled.
type stubbornHistory struct{ backend.History }

func (h stubbornHistory) Append(_ context.Context, p *protocol.Publication) (protocol.Position, error) {
	return h.History.Append(context.Background(), p)
}

// constantEpochHistory calls every epoch of its inner store by the first one
// it saw, and keeps it across a restart that loses everything.
type constantEpochHistory struct {
	backend.History
	mu    sync.Mutex
	inner *string // the name it gives every epoch
}

func (h *constantEpochHistory) name(e string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.inner == nil {
		h.inner = &e
	}
	return *h.inner
}

func (h *constantEpochHistory) Append(ctx context.Context, p *protocol.Publication) (protocol.Position, error) {
	pos, err := h.History.Append(ctx, p)
	pos.Epoch = h.name(pos.Epoch)
	p.Epoch = pos.Epoch
	return pos, err
}

func (h *constantEpochHistory) Read(ctx context.Context, ch string, q backend.Query) (backend.Result, error) {
	if q.Since != nil && q.Since.Epoch == h.name(q.Since.Epoch) {
		top, err := h.History.Read(ctx, ch, backend.Query{})
		if err != nil {
			return top, err
		}
		q.Since = &protocol.Position{Epoch: top.Top.Epoch, Offset: q.Since.Offset}
	}
	res, err := h.History.Read(ctx, ch, q)
	res.Top.Epoch = h.name(res.Top.Epoch)
	for i, p := range res.Publications {
		c := *p
		c.Epoch = res.Top.Epoch
		res.Publications[i] = &c
	}
	return res, err
}

// brokerMutant returns a run of the broker suite on memory brokers wrapped by
// wrap.
func brokerMutant(wrap func(*memory.Broker) backend.Broker) func(*testing.T) {
	return func(t *testing.T) {
		backendtest.TestBroker(t, backendtest.BrokerSuite{
			New: func(*testing.T) backend.Broker { return wrap(memory.NewBroker()) },
		})
	}
}

// twiceBroker delivers everything twice.
type twiceBroker struct{ *memory.Broker }

func (b *twiceBroker) Register(h func(*protocol.Publication)) error {
	return b.Broker.Register(func(p *protocol.Publication) { h(p); h(p) })
}

// lossyBroker loses the seventh publication of publisher "p".
type lossyBroker struct{ *memory.Broker }

func (b *lossyBroker) Register(h func(*protocol.Publication)) error {
	return b.Broker.Register(func(p *protocol.Publication) {
		if p.Epoch != "p" || p.Offset != 7 {
			h(p)
		}
	})
}

// reorderBroker holds the second publication of each channel back until the
// third.
type reorderBroker struct {
	*memory.Broker
	mu   sync.Mutex
	seen map[string]int
	held map[string]*protocol.Publication
}

func (b *reorderBroker) Register(h func(*protocol.Publication)) error {
	b.seen, b.held = make(map[string]int), make(map[string]*protocol.Publication)
	return b.Broker.Register(func(p *protocol.Publication) {
		b.mu.Lock()
		b.seen[p.Channel]++
		n, held := b.seen[p.Channel], b.held[p.Channel]
		if n == 2 {
			b.held[p.Channel] = p
		}
		b.mu.Unlock()
		switch {
		case n == 2:
		case n == 3:
			h(p)
			h(held)
		default:
			h(p)
		}
	})
}

// deafBroker delivers every publication, whether the node has interest or not.
type deafBroker struct {
	*memory.Broker
	h func(*protocol.Publication)
}

func (b *deafBroker) Register(h func(*protocol.Publication)) error { b.h = h; return nil }

func (b *deafBroker) Publish(ctx context.Context, p *protocol.Publication) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.h(p)
	return nil
}

// doubleSubBroker delivers once per Subscribe, as a naive NATS broker that
// subscribes a subject twice would.
type doubleSubBroker struct {
	*memory.Broker
	mu   sync.Mutex
	subs map[string]int
}

func (b *doubleSubBroker) Register(h func(*protocol.Publication)) error {
	return b.Broker.Register(func(p *protocol.Publication) {
		b.mu.Lock()
		n := b.subs[p.Channel]
		b.mu.Unlock()
		for range n {
			h(p)
		}
	})
}

func (b *doubleSubBroker) Subscribe(ctx context.Context, ch string) error {
	b.mu.Lock()
	b.subs[ch]++
	b.mu.Unlock()
	return b.Broker.Subscribe(ctx, ch)
}

func (b *doubleSubBroker) Unsubscribe(ctx context.Context, ch string) error {
	b.mu.Lock()
	b.subs[ch] = 0
	b.mu.Unlock()
	return b.Broker.Unsubscribe(ctx, ch)
}

// stubbornBroker publishes with a context that is never cancelled.
type stubbornBroker struct{ *memory.Broker }

func (b stubbornBroker) Publish(_ context.Context, p *protocol.Publication) error {
	return b.Broker.Publish(context.Background(), p)
}

// presenceMutant returns a run of the presence suite on memory stores,
// configured by configure and wrapped by wrap (either may be nil).
func presenceMutant(wrap func(backend.Presence) backend.Presence, configure func(*memory.PresenceConfig)) func(*testing.T) {
	return func(t *testing.T) {
		backendtest.TestPresence(t, backendtest.PresenceSuite{
			New: func(t *testing.T, cfg backendtest.PresenceConfig) backend.Presence {
				mcfg := memory.PresenceConfig{TTL: cfg.TTL, Now: cfg.Now}
				if configure != nil {
					configure(&mcfg)
				}
				p := memory.NewPresence(mcfg)
				t.Cleanup(func() { _ = p.Close(context.Background()) })
				if wrap != nil {
					return wrap(p)
				}
				return p
			},
			ReadsClock: true,
		})
	}
}

// anonCountingPresence counts the anonymous as one more user.
type anonCountingPresence struct{ backend.Presence }

func (p anonCountingPresence) Stats(ctx context.Context, ch string) (backend.PresenceStats, error) {
	s, err := p.Presence.Stats(ctx, ch)
	ms, _ := p.Members(ctx, ch)
	if slices.ContainsFunc(ms, func(m backend.Member) bool { return m.User == "" }) {
		s.Users++
	}
	return s, err
}

// norefreshPresence ignores an Add of a member already there.
type norefreshPresence struct{ backend.Presence }

func (p norefreshPresence) Add(ctx context.Context, ch string, m backend.Member) error {
	ms, err := p.Members(ctx, ch)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(ms, func(x backend.Member) bool { return x.Client == m.Client }) {
		return nil
	}
	return p.Presence.Add(ctx, ch, m)
}

// fussyPresence fails to remove a member that is not there.
type fussyPresence struct{ backend.Presence }

func (p fussyPresence) Remove(ctx context.Context, ch, client string) error {
	ms, err := p.Members(ctx, ch)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ms, func(x backend.Member) bool { return x.Client == client }) {
		return errors.New("no such member")
	}
	return p.Presence.Remove(ctx, ch, client)
}

// everyTabPresence says every new client is its user's first and last.
type everyTabPresence struct{ *memory.Presence }

func (p everyTabPresence) Join(ctx context.Context, ch string, m backend.Member) (backend.PresenceChange, error) {
	c, err := p.Presence.Join(ctx, ch, m)
	c.UserChanged = c.Changed
	return c, err
}

func (p everyTabPresence) Leave(ctx context.Context, ch, client string) (backend.PresenceChange, error) {
	c, err := p.Presence.Leave(ctx, ch, client)
	c.UserChanged = c.Changed
	return c, err
}

// racyPresence decides a user's first member from a read before the Join:
// two concurrent first Joins both see nobody.
type racyPresence struct{ *memory.Presence }

func (p racyPresence) Join(ctx context.Context, ch string, m backend.Member) (backend.PresenceChange, error) {
	ms, err := p.Members(ctx, ch)
	if err != nil {
		return backend.PresenceChange{}, err
	}
	first := !slices.ContainsFunc(ms, func(x backend.Member) bool { return x.User == m.User })
	runtime.Gosched()
	c, err := p.Presence.Join(ctx, ch, m)
	c.UserChanged = c.Changed && first
	return c, err
}

// addingRefreshPresence adds the clients it refreshes that are not there.
type addingRefreshPresence struct{ *memory.Presence }

func (p addingRefreshPresence) Refresh(ctx context.Context, ch string, clients []string) error {
	for _, c := range clients {
		if err := p.Add(ctx, ch, backend.Member{Client: c}); err != nil {
			return err
		}
	}
	return nil
}
