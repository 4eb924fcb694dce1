package tether_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth"
	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// presenceEnv starts a node whose connections authenticate with HS256 tokens
// (or stay anonymous) and whose namespaces are nss over the secure default.
func presenceEnv(t *testing.T, pc tether.PresenceConfig, nss ...namespaces.Namespace) *env {
	t.Helper()
	a, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret), AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	z, err := namespaces.New(namespaces.Secure, nss)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer, cfg.Presence = a, z, pc
	return startEnv(t, cfg, false)
}

// connectAs connects c as user ("": anonymous) and returns its client id.
func connectAs(t *testing.T, c *pconn, user string, claims ...any) string {
	t.Helper()
	token := ""
	if user != "" {
		token = sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", with(userClaims(user), claims...))
	}
	return callFor[protocol.ConnectResult](c, protocol.Command{Op: protocol.OpConnect, Token: token}).Client
}

// nextPresence reads c until a presence push of channel arrives and returns
// it, skipping replies and other pushes; it fails after 10s.
func nextPresence(t *testing.T, c *pconn, channel string) protocol.Presence {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := c.w.readMsg(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: waiting for a presence push of %s: %v", c.name, channel, err)
		}
		var p protocol.Presence
		var id struct {
			ID uint64 `json:"id"`
		}
		if json.Unmarshal(b, &id) == nil && id.ID == 0 && json.Unmarshal(b, &p) == nil && p.Op == protocol.PushPresence && p.Channel == channel {
			return p
		}
	}
}

// who lists the users (or, for anonymous members, the clients) of ms, sorted.
func who(ms []protocol.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.User != "" {
			out = append(out, m.User)
		} else {
			out = append(out, m.Client)
		}
	}
	slices.Sort(out)
	return out
}

func presenceOf(t *testing.T, c *pconn, channel string) protocol.PresenceResult {
	t.Helper()
	return callFor[protocol.PresenceResult](c, protocol.Command{Op: protocol.OpPresence, Channel: channel})
}

func statsOf(t *testing.T, c *pconn, channel string) protocol.PresenceStats {
	t.Helper()
	return callFor[protocol.PresenceStats](c, protocol.Command{Op: protocol.OpPresenceStats, Channel: channel})
}

// waitStats polls channel's counts until they are want, for 10s at most.
func waitStats(t *testing.T, c *pconn, channel string, want protocol.PresenceStats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := statsOf(t, c, channel)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence_stats %s = %+v, want %+v", channel, got, want)
		}
		time.Sleep(10 * time.Millisecond) // the server's close of a connection has no signal to wait on
	}
}

// TestPresenceUsersAndTabs: two users, one with three connections (one per
// transport): presence lists four clients, presence_stats says 4 clients
// and 2 users; with join_leave users the second and third tab cause no join,
// and only the last tab's close causes the leave.
func TestPresenceUsersAndTabs(t *testing.T) {
	const ch = "room:1"
	e := presenceEnv(t, tether.PresenceConfig{Window: 50 * time.Millisecond},
		namespaces.Namespace{Name: "room", JoinLeave: auth.JoinLeaveUsers})
	bob := e.dialWS()
	bobID := connectAs(t, bob, "bob")
	bob.subscribe(ch, nil)
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"bob"}) || p.Join[0].Client != bobID || p.Joined != 1 {
		t.Fatalf("bob's own join: %+v", p)
	}

	tabs := e.dialAll() // ann on WebSocket, TCP and gRPC
	for _, tab := range tabs {
		connectAs(t, tab, "ann")
	}
	tabs[0].subscribe(ch, nil)
	p := nextPresence(t, bob, ch)
	if !slices.Equal(who(p.Join), []string{"ann"}) || len(p.Leave) != 0 || string(p.Join[0].Info) != `{"name":"ann"}` || p.Join[0].ConnectedAt == 0 {
		t.Fatalf("ann's first tab: %+v", p)
	}
	tabs[1].subscribe(ch, nil)
	tabs[2].subscribe(ch, nil)
	carl := e.dialWS()
	connectAs(t, carl, "carl")
	carl.subscribe(ch, nil) // the next push: carl's join alone, no more of ann
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"carl"}) || p.Joined != 1 {
		t.Fatalf("after ann's second and third tab and carl: %+v, want carl's join only", p)
	}
	carl.call(protocol.Command{Op: protocol.OpUnsubscribe, Channel: ch})
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Leave), []string{"carl"}) {
		t.Fatalf("carl's leave: %+v", p)
	}

	res := presenceOf(t, bob, ch)
	if got := who(res.Members); !slices.Equal(got, []string{"ann", "ann", "ann", "bob"}) {
		t.Fatalf("presence lists %v, want ann three times and bob", got)
	}
	if st := statsOf(t, bob, ch); st != (protocol.PresenceStats{Clients: 4, Users: 2}) {
		t.Fatalf("presence_stats %+v, want 4 clients and 2 users", st)
	}

	tabs[0].w.close()
	tabs[1].w.close()
	waitStats(t, bob, ch, protocol.PresenceStats{Clients: 2, Users: 2})
	carl.subscribe(ch, nil) // again: the next push must hold no leave of ann
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Join), []string{"carl"}) || len(p.Leave) != 0 {
		t.Fatalf("after closing two of ann's tabs: %+v, want carl's join only", p)
	}
	tabs[2].w.close()
	if p := nextPresence(t, bob, ch); !slices.Equal(who(p.Leave), []string{"ann"}) || p.Left != 1 || len(p.Join) != 0 {
		t.Fatalf("ann's last tab: %+v, want her leave", p)
	}
}

// TestPresenceHeartbeatKill: a connection that stops answering (no close
// frame) leaves presence when the heartbeat drops it.
func TestPresenceHeartbeatKill(t *testing.T) {
	const ch = "tabs:1"
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret), AllowAnonymous: true})
	z, _ := namespaces.New(namespaces.Open, []namespaces.Namespace{{Name: "tabs", JoinLeave: auth.JoinLeaveClients, Occupancy: true}})
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer = a, z
	cfg.Presence.Window = 50 * time.Millisecond
	// The watcher answers pings only while it reads, not while the silent
	// client dials: the timeout gives that a second on a loaded machine.
	cfg.PingInterval, cfg.PongTimeout = 100*time.Millisecond, time.Second
	cfg.CloseTimeout = 100 * time.Millisecond // the silent client answers no close frame either
	e := startEnv(t, cfg, false)
	watch := e.dialWS() // reads whenever it waits: it answers pings
	connectAs(t, watch, "")
	watch.subscribe(ch, nil)
	if p := nextPresence(t, watch, ch); p.Joined != 1 || p.Occupancy == nil || *p.Occupancy != (protocol.PresenceStats{Clients: 1}) {
		t.Fatalf("own join: %+v", p)
	}

	silent, _ := rawDial(t, e.n, "/ws", nil)
	silent.writeFrame(0x81, []byte(`{"id":1,"op":"connect"}`))
	silent.writeFrame(0x81, []byte(`{"id":2,"op":"subscribe","channel":"`+ch+`"}`))
	p := nextPresence(t, watch, ch)
	if p.Joined != 1 || len(p.Join) != 1 || p.Occupancy == nil || p.Occupancy.Clients != 2 {
		t.Fatalf("the silent client's join: %+v", p)
	}
	gone := p.Join[0].Client
	start := time.Now()
	p = nextPresence(t, watch, ch) // the silent client answers no ping: dropped
	if p.Left != 1 || len(p.Leave) != 1 || p.Leave[0].Client != gone || p.Occupancy == nil || p.Occupancy.Clients != 1 {
		t.Fatalf("after the heartbeat: %+v, want %s's leave", p, gone)
	}
	t.Logf("left %v after its join", time.Since(start))
	if st := statsOf(t, watch, ch); st.Clients != 1 {
		t.Fatalf("presence_stats %+v after the kill", st)
	}
}

// TestPresenceCoalescing: 200 joins inside one window arrive as one push
// that lists them, or, past the cap, that counts them.
func TestPresenceCoalescing(t *testing.T) {
	const joins = 200
	for _, tc := range []struct {
		name      string
		maxListed int
		listed    bool
	}{
		{"listed", 500, true},
		{"past the cap", 50, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each mostly waits for its windows
			const ch = "tabs:burst"
			// The subscribes take tens of milliseconds, and over half a
			// second on a loaded machine: the window is well above that.
			e := presenceEnv(t, tether.PresenceConfig{Window: 2 * time.Second, MaxListed: tc.maxListed},
				namespaces.Namespace{Name: "tabs", Subscribe: namespaces.All, JoinLeave: auth.JoinLeaveClients})
			watch := e.dialWS()
			connectAs(t, watch, "watcher")
			watch.subscribe(ch, nil)
			nextPresence(t, watch, ch) // its own join
			conns := make([]*pconn, joins)
			for i := range conns {
				conns[i] = e.dialTCP()
			}
			for _, c := range conns { // connected first: the burst is the subscribes alone
				c.send(protocol.Command{Op: protocol.OpConnect})
			}
			for _, c := range conns {
				if m := c.read(); m.Error != nil {
					t.Fatalf("connect: %v", m.Error)
				}
			}
			burst := time.Now()
			for _, c := range conns { // all the subscribes at once: well inside the window
				c.send(protocol.Command{Op: protocol.OpSubscribe, Channel: ch})
			}
			for _, c := range conns {
				if m := c.read(); m.Error != nil {
					t.Fatalf("subscribe: %v", m.Error)
				}
			}
			took := time.Since(burst)
			p := nextPresence(t, watch, ch)
			if p.Joined != joins || p.Left != 0 {
				t.Fatalf("one push for %d joins (subscribed in %v): joined %d, left %d", joins, took, p.Joined, p.Left)
			}
			if tc.listed != (len(p.Join) == joins) || !tc.listed && len(p.Join) != 0 {
				t.Fatalf("push lists %d members, cap %d", len(p.Join), tc.maxListed)
			}
			if st := statsOf(t, watch, ch); st.Clients != joins+1 {
				t.Fatalf("presence_stats %+v", st)
			}
		})
	}
}

// TestPresencePermissions: presence and presence_stats follow the
// namespace's presence rule, and need a channel that keeps presence.
func TestPresencePermissions(t *testing.T) {
	rule := func(name string, r namespaces.Rule) namespaces.Namespace {
		return namespaces.Namespace{Name: name, Subscribe: namespaces.All, Presence: r}
	}
	e := presenceEnv(t, tether.PresenceConfig{},
		rule("pub", namespaces.All), rule("chat", namespaces.Users), rule("private", namespaces.Granted),
		rule("locked", namespaces.None), namespaces.Namespace{Name: "pushes", Subscribe: namespaces.All, Presence: namespaces.None, JoinLeave: auth.JoinLeaveUsers})
	const ok, denied = "", protocol.ErrPermission
	tests := []struct {
		channel, user string
		claims        []any
		want          string
	}{
		{"pub:x", "", nil, ok},
		{"chat:x", "", nil, denied},
		{"chat:x", "ann", nil, ok},
		{"private:x", "ann", nil, denied},
		{"private:x", "ann", []any{"channels", []string{"private:x"}}, ok},
		{"private:y", "ann", []any{"channels", []string{"private:x"}}, denied},
		{"locked:x", "ann", []any{"channels", []string{"locked:x"}}, denied},
		{"pushes:x", "ann", nil, denied}, // kept for its pushes, listed to nobody
		{"news", "ann", nil, ok},         // the secure default: users
		{"dm:#ann,bob", "ann", nil, ok},
		{"dm:#ann,bob", "eve", nil, denied},
	}
	for _, tt := range tests {
		for _, op := range []string{protocol.OpPresence, protocol.OpPresenceStats} {
			t.Run(fmt.Sprintf("%s/%s/%s", tt.channel, tt.user, op), func(t *testing.T) {
				c := e.dialWS()
				connectAs(t, c, tt.user, tt.claims...)
				checkReply(t, c.call(protocol.Command{Op: op, Channel: tt.channel}), tt.want)
			})
		}
	}
}

// TestPresenceServerAPI: the server API lists a channel's members and
// counts them, over HTTP and gRPC.
func TestPresenceServerAPI(t *testing.T) {
	const ch = "room:api"
	e := presenceEnv(t, tether.PresenceConfig{}, namespaces.Namespace{Name: "room"})
	ann, bob := e.dialWS(), e.dialTCP()
	annID := connectAs(t, ann, "ann")
	connectAs(t, bob, "bob")
	ann.subscribe(ch, nil)
	bob.subscribe(ch, nil)
	status, body := e.postAPI("/api/presence", "", `{"channel":"`+ch+`"}`)
	var res protocol.PresenceResult
	if status != 200 || json.Unmarshal(body, &res) != nil || !slices.Equal(who(res.Members), []string{"ann", "bob"}) {
		t.Fatalf("POST /api/presence: %d %s", status, body)
	}
	status, body = e.postAPI("/api/presence_stats", "", `{"channel":"`+ch+`"}`)
	if status != 200 || string(body) != `{"clients":2,"users":2}`+"\n" {
		t.Fatalf("POST /api/presence_stats: %d %s", status, body)
	}
	if status, body = e.postAPI("/api/presence", "", `{"channel":"bad channel"}`); status != 400 {
		t.Fatalf("POST /api/presence with a bad channel: %d %s", status, body)
	}
	members, err := e.n.Presence(t.Context(), ch)
	if err != nil || len(members) != 2 {
		t.Fatalf("Node.Presence: %v %v", members, err)
	}
	for _, m := range members {
		if m.Client == annID && string(m.Info) != `{"name":"ann"}` {
			t.Fatalf("ann's member: %+v", m)
		}
	}
}

// TestPresenceTooManyMembers: a presence reply that would not fit the
// connection's outbound limit is refused with too_many_members, and the
// connection stays; presence_stats still answers.
func TestPresenceTooManyMembers(t *testing.T) {
	const ch = "room:big"
	z, _ := namespaces.New(namespaces.Open, []namespaces.Namespace{{Name: "room"}})
	cfg := tethertest.Config()
	cfg.Authorizer = z
	cfg.MaxMessageSize, cfg.MaxOutbound = 1024, 4096 // presence replies up to 2 KiB: about 40 members
	e := startEnv(t, cfg, false)
	asker := e.dialWS()
	asker.subscribe(ch, nil)
	for range 49 {
		e.dialTCP().subscribe(ch, nil)
	}
	checkReply(t, asker.call(protocol.Command{Op: protocol.OpPresence, Channel: ch}), protocol.ErrTooManyMembers)
	if st := statsOf(t, asker, ch); st.Clients != 50 {
		t.Fatalf("presence_stats %+v, want 50 clients", st)
	}
}
