package presence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/backend/backendtest"
	"github.com/tetherhq/tether/backend/memory"
	"github.com/tetherhq/tether/protocol"
)

// pushes records what a Presence delivers.
type pushes chan protocol.Presence

func (ps pushes) deliver(_ string, payload []byte) {
	var p protocol.Presence
	if err := json.Unmarshal(payload, &p); err != nil {
		panic(err) // the package's own encoding
	}
	ps <- p
}

// next returns the next push, failing after 5s.
func (ps pushes) next(t *testing.T) protocol.Presence {
	t.Helper()
	select {
	case p := <-ps:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no push after 5s")
		return protocol.Presence{}
	}
}

func clientsOf(ms []protocol.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Client
	}
	slices.Sort(out)
	return out
}

// newPresence returns a Presence over store with a short window, and its
// pushes.
func newPresence(t *testing.T, store backend.Presence, maxListed int) (*Presence, pushes) {
	t.Helper()
	ps := make(pushes, 64)
	p, err := New(Config{Store: store, Deliver: ps.deliver, Window: 20 * time.Millisecond, MaxListed: maxListed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, ps
}

func memStore(t *testing.T, now func() time.Time) *memory.Presence {
	s := memory.NewPresence(memory.PresenceConfig{TTL: time.Minute, Now: now})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

var (
	clientsOpts = auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveClients}
	usersOpts   = auth.PresenceOptions{Track: true, JoinLeave: auth.JoinLeaveUsers, Occupancy: true}
)

func join(t *testing.T, p *Presence, client, user string, o auth.PresenceOptions) {
	t.Helper()
	if err := p.Join(context.Background(), "ch", backend.Member{Client: client, User: user}, o); err != nil {
		t.Fatal(err)
	}
}

func leave(t *testing.T, p *Presence, client string, o auth.PresenceOptions) {
	t.Helper()
	if err := p.Leave(context.Background(), "ch", client, o); err != nil {
		t.Fatal(err)
	}
}

// TestWindowCancels: a join and a leave of one client inside a window are
// no news; the push after says only what stayed changed.
func TestWindowCancels(t *testing.T) {
	p, ps := newPresence(t, memStore(t, nil), 0)
	join(t, p, "a", "", clientsOpts)
	leave(t, p, "a", clientsOpts)
	join(t, p, "b", "", clientsOpts)
	if got := ps.next(t); !slices.Equal(clientsOf(got.Join), []string{"b"}) || got.Joined != 1 || len(got.Leave) != 0 {
		t.Fatalf("push %+v, want b's join only", got)
	}
	leave(t, p, "b", clientsOpts)
	join(t, p, "b", "", clientsOpts) // a reconnect inside the window
	join(t, p, "c", "", clientsOpts)
	if got := ps.next(t); !slices.Equal(clientsOf(got.Join), []string{"c"}) || got.Left != 0 {
		t.Fatalf("push %+v, want c's join only", got)
	}
	leave(t, p, "nobody", clientsOpts) // never joined: nothing
	leave(t, p, "c", clientsOpts)
	if got := ps.next(t); !slices.Equal(clientsOf(got.Leave), []string{"c"}) || got.Joined != 0 {
		t.Fatalf("push %+v, want c's leave", got)
	}
}

// TestUsersAndOccupancy: per user, a second tab is silent but moves the
// counts.
func TestUsersAndOccupancy(t *testing.T) {
	p, ps := newPresence(t, memStore(t, nil), 0)
	join(t, p, "a1", "ann", usersOpts)
	got := ps.next(t)
	if len(got.Join) != 1 || got.Join[0].User != "ann" || *got.Occupancy != (protocol.PresenceStats{Clients: 1, Users: 1}) {
		t.Fatalf("first tab: %+v", got)
	}
	join(t, p, "a2", "ann", usersOpts)
	got = ps.next(t)
	if got.Joined != 0 || *got.Occupancy != (protocol.PresenceStats{Clients: 2, Users: 1}) {
		t.Fatalf("second tab: %+v, want the counts only", got)
	}
	leave(t, p, "a1", usersOpts)
	ps.next(t) // counts
	leave(t, p, "a2", usersOpts)
	got = ps.next(t)
	if len(got.Leave) != 1 || got.Leave[0].User != "ann" || *got.Occupancy != (protocol.PresenceStats{}) {
		t.Fatalf("last tab: %+v", got)
	}
}

// TestCap: past MaxListed a push counts its members without listing them.
func TestCap(t *testing.T) {
	p, ps := newPresence(t, memStore(t, nil), 3)
	for i := range 4 {
		join(t, p, fmt.Sprint("c", i), "", clientsOpts)
	}
	if got := ps.next(t); got.Joined != 4 || len(got.Join) != 0 {
		t.Fatalf("push %+v, want 4 joins counted, none listed", got)
	}
}

// plainStore hides the memory store's PresenceTracker.
type plainStore struct{ backend.Presence }

// TestRefresh: the members of this node outlive the store's TTL while
// refreshed; one that left is not added back. With a tracker and without.
func TestRefresh(t *testing.T) {
	for _, tracker := range []bool{true, false} {
		t.Run(fmt.Sprint("tracker=", tracker), func(t *testing.T) {
			clock := backendtest.NewClock(time.Now())
			mem := memStore(t, clock.Now)
			var store backend.Presence = mem
			if !tracker {
				store = plainStore{mem}
			}
			p, _ := newPresence(t, store, 0)
			join(t, p, "a", "ann", clientsOpts)
			join(t, p, "b", "bob", clientsOpts)
			if err := mem.Add(context.Background(), "ch", backend.Member{Client: "elsewhere"}); err != nil { // another node's
				t.Fatal(err)
			}
			leave(t, p, "b", clientsOpts)
			for range 3 {
				clock.Advance(40 * time.Second)
				if err := p.Refresh(context.Background(), "ch", []string{"a"}); err != nil { // b has left
					t.Fatal(err)
				}
			}
			mem.Sweep()
			ms, err := p.Members(context.Background(), "ch")
			if err != nil || !slices.Equal(clientsOf(ms), []string{"a"}) {
				t.Fatalf("members after 2 min of refreshes: %v %v, want a alone", ms, err)
			}
		})
	}
}

// TestWithoutTracker: a store without PresenceTracker gets joins and leaves
// per connection, even per user.
func TestWithoutTracker(t *testing.T) {
	p, ps := newPresence(t, plainStore{memStore(t, nil)}, 0)
	join(t, p, "a1", "ann", usersOpts)
	join(t, p, "a2", "ann", usersOpts)
	if got := ps.next(t); got.Joined != 2 || *got.Occupancy != (protocol.PresenceStats{Clients: 2, Users: 1}) {
		t.Fatalf("push %+v, want two joins", got)
	}
}

// TestMemoryPerMember: a member costs the presence store and this package
// under 200 bytes, beyond its connection (whose client id and user strings
// they share).
func TestMemoryPerMember(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 15,000 members")
	}
	const n = 15_000
	per := memoryPerMember(t, n)
	t.Logf("%.0f bytes per member (%d members in one channel)", per, n)
	if per >= 200 {
		t.Fatalf("%.0f bytes per member, want under 200", per)
	}
}

// memoryPerMember joins n members to one channel and returns the heap it
// took per member.
func memoryPerMember(t testing.TB, n int) float64 {
	store := memory.NewPresence(memory.PresenceConfig{})
	defer store.Close(context.Background())
	p, err := New(Config{Store: store, Deliver: func(string, []byte) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	members := make([]backend.Member, n) // the sessions' own strings
	at := time.Now()
	for i := range members {
		members[i] = backend.Member{Client: "c" + strconv.FormatUint(uint64(i+1<<20), 36), User: "user" + strconv.Itoa(i), ConnectedAt: at}
	}
	opts := auth.PresenceOptions{Track: true}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, m := range members {
		if err := p.Join(context.Background(), "bench:presence", m, opts); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(members)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// BenchmarkJoinLeave is one join and one leave in a channel of 15,000
// members, with join_leave per user and occupancy.
func BenchmarkJoinLeave(b *testing.B) {
	store := memory.NewPresence(memory.PresenceConfig{})
	defer store.Close(context.Background())
	p, err := New(Config{Store: store, Deliver: func(string, []byte) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	for i := range 15_000 {
		_ = p.Join(ctx, "ch", backend.Member{Client: "m" + strconv.Itoa(i), User: "u" + strconv.Itoa(i)}, usersOpts)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := "c" + strconv.Itoa(i%1000)
		_ = p.Join(ctx, "ch", backend.Member{Client: c, User: c}, usersOpts)
		_ = p.Leave(ctx, "ch", c, usersOpts)
	}
}

// BenchmarkStats is presence_stats on a channel of 15,000 members.
func BenchmarkStats(b *testing.B) {
	store := memory.NewPresence(memory.PresenceConfig{})
	defer store.Close(context.Background())
	p, _ := New(Config{Store: store, Deliver: func(string, []byte) {}})
	ctx := context.Background()
	for i := range 15_000 {
		_ = p.Join(ctx, "ch", backend.Member{Client: "m" + strconv.Itoa(i)}, auth.PresenceOptions{Track: true})
	}
	for b.Loop() {
		_, _ = p.Counts(ctx, "ch")
	}
}

// TestPushesAWindowApart: under continuous churn a channel's pushes go out
// one per window, never two closer together.
func TestPushesAWindowApart(t *testing.T) {
	const window = 50 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	p, err := New(Config{Store: memStore(t, nil), Window: window, Deliver: func(string, []byte) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 400 {
		c := strconv.Itoa(i)
		if err := p.Join(ctx, "ch", backend.Member{Client: c}, clientsOpts); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the churn's pace: a join every millisecond or so
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) < 3 {
		t.Fatalf("%d pushes for 400 joins over %d windows", len(at), 400*time.Millisecond/window)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < window*9/10 {
			t.Fatalf("pushes %d and %d %v apart, window %v", i-1, i, gap, window)
		}
	}
}

// BenchmarkPresenceReply15k is the server's work for one presence command on
// a channel of 15,000 members: the store's read and the reply's encoding. It
// reports the process CPU time per command too (cpu-ms/op), which a busy
// machine inflates less than the wall time.
func BenchmarkPresenceReply15k(b *testing.B) {
	store := memory.NewPresence(memory.PresenceConfig{})
	defer store.Close(context.Background())
	p, _ := New(Config{Store: store, Deliver: func(string, []byte) {}})
	ctx := context.Background()
	at := time.Now()
	for i := range 15_000 {
		_ = p.Join(ctx, "ch", backend.Member{Client: "c" + strconv.FormatUint(uint64(i+1<<20), 36), ConnectedAt: at}, auth.PresenceOptions{Track: true})
	}
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		if _, _, err := p.AppendMembers(ctx, nil, "ch", 0); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n)/1e6, "cpu-ms/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestAppendMembers: the appending encoder writes what encoding/json writes
// of a protocol.PresenceResult, escapes included, and refuses past its limit.
func TestAppendMembers(t *testing.T) {
	at := time.UnixMilli(1764620000123)
	for _, ms := range [][]backend.Member{
		{},
		{{Client: "c1", ConnectedAt: at}},
		{{Client: "c1", User: "ann", Info: json.RawMessage(`{"name":"Ann"}`), ConnectedAt: at}, {Client: "c2", User: "quo\"te\\ <b>&é\x01\u2028"}},
	} {
		store := memStore(t, nil)
		p, _ := newPresence(t, store, 0)
		want := protocol.PresenceResult{Members: []protocol.Member{}}
		for _, m := range ms {
			if err := store.Add(context.Background(), "ch", m); err != nil {
				t.Fatal(err)
			}
			want.Members = append(want.Members, wireMember(m))
		}
		got, n, err := p.AppendMembers(context.Background(), []byte("x"), "ch", 0)
		if err != nil || n != len(ms) {
			t.Fatalf("AppendMembers: %d members, %v", n, err)
		}
		wantJSON, _ := json.Marshal(want)
		if string(got) != "x"+string(wantJSON) {
			t.Errorf("got  %s\nwant x%s", got, wantJSON)
		}
		if len(ms) > 0 {
			if got, n, err := p.AppendMembers(context.Background(), []byte("x"), "ch", len(wantJSON)-1); !errors.Is(err, ErrTooLarge) || string(got) != "x" || n != len(ms) {
				t.Errorf("past the limit: %q %d %v", got, n, err)
			}
		}
	}
}
