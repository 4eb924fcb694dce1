package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

// The browser tests drive tether.js and the pages in a real headless Chromium
// (see chat_test.go for TestChatPage and how Chromium is found). Each bounds
// every wait; a failure leaves screenshots in artefacts/ (browser_helpers_test.go).

const statusJS = `document.getElementById("status")`

// waitConnected waits until a chat tab is connected and in room.
func waitConnected(tb *tab, room string) {
	tb.b.t.Helper()
	tb.waitFor(10*time.Second, statusJS+`.dataset.state === "connected" && window.chat?.room() === `+jsString(room)+` && chat.sub()?.position != null`, statusJS+`.textContent`)
}

// waitMessages waits until a chat tab shows exactly want, in order.
func waitMessages(tb *tab, want []string, limit time.Duration) {
	tb.b.t.Helper()
	tb.waitFor(limit, fmt.Sprintf(`document.querySelectorAll("#log li[data-key]").length >= %d`, len(want)), `[...document.querySelectorAll("#log li")].map((li) => (li.dataset.key ?? "") + " " + li.textContent).join(" | ")`)
	if got := chatMessages(tb); !sameStrings(got, want) {
		tb.b.t.Fatalf("%s shows %d messages %q, want %d: %q", tb.name, len(got), got, len(want), want)
	}
}

// publishChat publishes {name, text} to a chat room through the node.
func publishChat(t *testing.T, n *tether.Node, room, name, text string) {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"name": name, "text": text})
	if _, err := n.Publish(context.Background(), "chat:"+room, data); err != nil {
		t.Fatalf("publish %q: %v", text, err)
	}
}

// TestBrowserOffline: one tab's network goes away for 3 s while another tab
// publishes 50 messages. The offline tab shows that it is reconnecting, and,
// once back, every message exactly once, in order.
func TestBrowserOffline(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	b := newBrowser(t, 40*time.Second)
	away := b.open("away", tethertest.HTTPURL(n, "/?shared=0#offline"))
	other := b.open("other", tethertest.HTTPURL(n, "/?shared=0#offline"))
	waitConnected(away, "offline")
	waitConnected(other, "offline")

	away.setOffline(true)
	wentOffline := time.Now()
	away.waitFor(5*time.Second, statusJS+`.dataset.state !== "connected" && `+statusJS+`.textContent === "reconnecting…"`, statusJS+`.textContent`)
	var sent int
	other.eval(`(async () => { for (let i = 1; i <= 50; i++) await chat.send("m" + i); return 50; })()`, &sent)
	want := numberedTexts("m", 50)
	waitMessages(other, want, 10*time.Second)
	time.Sleep(3*time.Second - time.Since(wentOffline)) // the scenario: 3 s without network
	var state string
	var shown int
	away.eval(statusJS+`.dataset.state`, &state)
	away.eval(`document.querySelectorAll("#log li[data-key]").length`, &shown)
	if state == "connected" || shown != 0 {
		t.Fatalf("offline for 3 s, the tab is %s and shows %d messages", state, shown)
	}

	away.setOffline(false)
	waitMessages(away, want, 10*time.Second)
	away.waitFor(5*time.Second, statusJS+`.dataset.state === "connected" && document.querySelector("#log .recovered") != null`, `document.getElementById("log").textContent`)
}

// TestChatPageGap: when the server's history cannot cover the time a tab was
// away, the chat page says so, reloads what history has, and goes on.
func TestChatPageGap(t *testing.T) {
	cfg := tethertest.Config()
	cfg.HistorySize = 3
	n := tethertest.NewNode(t, cfg)
	b := newBrowser(t, 45*time.Second)
	tb := b.open("tab", tethertest.HTTPURL(n, "/?shared=0#gap"))
	waitConnected(tb, "gap")
	publishChat(t, n, "gap", "api", "m1")
	waitMessages(tb, []string{"m1"}, 5*time.Second)
	tb.setOffline(true)
	tb.waitFor(5*time.Second, statusJS+`.dataset.state !== "connected"`, statusJS+`.textContent`)
	for i := 2; i <= 10; i++ {
		publishChat(t, n, "gap", "api", fmt.Sprintf("m%d", i))
	}
	tb.setOffline(false)
	// Generous bounds: the page's reconnect backoff and a loaded CI machine.
	tb.waitFor(20*time.Second, `document.querySelector("#log .gap") != null`, `document.getElementById("log").textContent`)
	// The page loads the history kept (m8-m10) after it shows the gap; m11
	// waits for that, or it would push m8 out of the three kept.
	waitMessages(tb, []string{"m1", "m8", "m9", "m10"}, 10*time.Second)
	publishChat(t, n, "gap", "api", "m11")
	waitMessages(tb, []string{"m1", "m8", "m9", "m10", "m11"}, 10*time.Second)
}

// TestBrowserServerDrop: the server drops a tab's connection, with the server
// API or by resetting its socket, while messages are published; the tab
// reconnects by itself, recovers, and shows every message once, in order.
func TestBrowserServerDrop(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(t *testing.T, n *tether.Node, client string)
	}{
		{"api disconnect", func(t *testing.T, n *tether.Node, client string) {
			resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/disconnect"), "", `{"client":`+jsString(client)+`,"reconnect":true}`)
			if resp.StatusCode != 200 {
				t.Fatalf("disconnect %s: %d %s", client, resp.StatusCode, body)
			}
		}},
		{"socket reset", func(t *testing.T, n *tether.Node, _ string) {
			if got := n.AbortConnections(1); got != 1 {
				t.Fatalf("AbortConnections dropped %d connections, want 1", got)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tethertest.NewNode(t, tethertest.Config())
			b := newBrowser(t, 30*time.Second)
			tb := b.open("tab", tethertest.HTTPURL(n, "/?shared=0#drop"))
			waitConnected(tb, "drop")
			for i := 1; i <= 5; i++ {
				publishChat(t, n, "drop", "api", fmt.Sprintf("m%d", i))
			}
			waitMessages(tb, numberedTexts("m", 5), 5*time.Second)
			var first string
			tb.eval(`chat.client.clientId`, &first)

			tc.drop(t, n, first)
			for i := 6; i <= 20; i++ { // racing the reconnect
				publishChat(t, n, "drop", "api", fmt.Sprintf("m%d", i))
			}
			tb.waitFor(10*time.Second, `chat.client.clientId !== `+jsString(first)+` && `+statusJS+`.dataset.state === "connected"`, `chat.client.clientId`)
			tb.waitFor(5*time.Second, `document.querySelector("#log .recovered") != null`, `document.getElementById("log").textContent`)
			waitMessages(tb, numberedTexts("m", 20), 5*time.Second)
			if st := getStats(t, n); st.Recoveries.OK < 1 || st.Recoveries.Failed != 0 {
				t.Fatalf("server recoveries %+v, want one ok", st.Recoveries)
			}
		})
	}
}

// TestBrowserShared: five tabs with shared: true hold one server connection
// between them, and closing the tab that holds it (the leader, or the tab that
// started the SharedWorker) while messages flow loses nothing in the others.
func TestBrowserShared(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		modes       []string // the tabs' chat.client.mode, sorted
	}{
		{"worker", "", []string{"worker", "worker", "worker", "worker", "worker"}},
		{"leader", "?shared=leader", []string{"follower", "follower", "follower", "follower", "leader"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const total = 80
			n := tethertest.NewNode(t, tethertest.Config())
			b := newBrowser(t, 40*time.Second)
			var tabs []*tab
			for i := range 5 {
				tb := b.open(fmt.Sprintf("tab%d", i), tethertest.HTTPURL(n, "/"+tc.query+"#shared"))
				waitConnected(tb, "shared")
				tabs = append(tabs, tb)
			}
			var modes []string
			holder := tabs[0] // the SharedWorker's first tab, or the leader
			for _, tb := range tabs {
				var m string
				tb.eval(`chat.client.mode`, &m)
				modes = append(modes, m)
				if m == "leader" {
					holder = tb
				}
			}
			sort.Strings(modes)
			if !sameStrings(modes, tc.modes) {
				t.Fatalf("the tabs' modes are %q, want %q", modes, tc.modes)
			}
			waitServer(t, n, "one connection and one subscription for five tabs", func(in tether.Info) bool {
				return in.WebSocketConnections == 1 && in.Subscriptions == 1
			})

			// Publish steadily; close the holder a quarter of the way in.
			done := make(chan error, 1)
			go func() {
				tick := time.NewTicker(5 * time.Millisecond)
				defer tick.Stop()
				for i := 1; i <= total; i++ {
					<-tick.C
					data, _ := json.Marshal(map[string]string{"name": "api", "text": fmt.Sprintf("m%d", i)})
					if _, err := n.Publish(context.Background(), "chat:shared", data); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			time.Sleep(100 * time.Millisecond) // about 20 messages in
			holder.close()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("publishing took over 10s")
			}
			want := numberedTexts("m", total)
			for _, tb := range tabs {
				if tb != holder {
					waitMessages(tb, want, 10*time.Second)
				}
			}
			waitServer(t, n, "one connection again", func(in tether.Info) bool {
				return in.WebSocketConnections == 1 && in.Subscriptions == 1
			})
			if tc.name == "leader" { // another tab took over, with a connection of its own
				var leaders int
				for _, tb := range tabs {
					if tb != holder {
						var m string
						tb.eval(`chat.client.mode`, &m)
						if m == "leader" {
							leaders++
						}
						// Each tab caught up from its own position: recovered.
						tb.waitFor(5*time.Second, `document.querySelector("#log .recovered") != null`, `document.getElementById("log").textContent`)
					}
				}
				if leaders != 1 {
					t.Fatalf("%d tabs lead after the leader closed, want 1", leaders)
				}
			}
		})
	}
}

// TestStatsPage: the stats page's figures and charts move while messages flow.
func TestStatsPage(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	sub := dial(t, n)
	sub.subscribe("busy")
	b := newBrowser(t, 30*time.Second)
	st := b.open("stats", tethertest.HTTPURL(n, "/stats"))
	st.waitFor(5*time.Second, `document.getElementById("nodes").textContent.includes("this node")`, `document.getElementById("status").textContent`)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for range 1000 { // 10 s at most
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
			}
			if _, err := n.Publish(context.Background(), "busy", json.RawMessage(`{"text":"tick"}`)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	num := func(id string) string {
		return `+document.getElementById("` + id + `").textContent.replace(/,/g, "")`
	}
	st.waitFor(8*time.Second, num("publications")+` >= 50 && `+num("pubrate")+` > 0 && `+num("delrate")+` > 0 && `+
		num("subscriptions")+` === 1 && `+num("conn-websocket")+` === 1 && `+
		`+document.getElementById("chart-pubrate").dataset.points >= 2 && document.getElementById("busiest").textContent.includes("busy")`,
		`document.querySelector("main").innerText`)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var points string
	st.run(5*time.Second, "read the chart", chromedp.AttributeValue("#chart-pubrate polyline", "points", &points, nil, chromedp.ByQuery))
	if points == "" {
		t.Fatal("the publications chart has no points")
	}
}

// waitServer polls the node's Info until ok holds, for 10 s at most.
func waitServer(t *testing.T, n *tether.Node, what string, ok func(tether.Info) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in := n.Info()
		if ok(in) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s; the server has %d connections and %d subscriptions", what, in.WebSocketConnections, in.Subscriptions)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getStats reads GET /api/stats.
func getStats(t *testing.T, n *tether.Node) tether.Stats {
	t.Helper()
	resp, err := http.Get(tethertest.HTTPURL(n, "/api/stats"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st tether.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode /api/stats: %v", err)
	}
	return st
}

// sameStrings reports whether a and b hold the same strings in the same order.
// (This package's tcp_test.go has a function named slices.)
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestREADMEBrowserSnippet runs the README's browser snippet as it is written
// (only the server's address differs) in a page of the server.
func TestREADMEBrowserSnippet(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Browser\n")
	_, code, ok2 := strings.Cut(section, "```js\n")
	code, _, ok3 := strings.Cut(code, "```")
	if !ok || !ok2 || !ok3 || !strings.Contains(code, "127.0.0.1:8080") {
		t.Fatal("README.md has no ```js block with 127.0.0.1:8080 under ## Browser")
	}
	n := tethertest.NewNode(t, tethertest.Config())
	code = strings.ReplaceAll(code, "127.0.0.1:8080", n.Addr().String())
	b := newBrowser(t, 30*time.Second)
	tb := b.open("snippet", tethertest.HTTPURL(n, "/stats"))
	lit, _ := json.Marshal(code) // a JavaScript string literal
	tb.eval(`(() => { const s = document.createElement("script"); s.type = "module"; s.textContent = `+string(lit)+`; document.head.append(s); return true; })()`, nil)
	want := []string{"log: state: connected", "log: history: hi", "log: state: closed"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := tb.consoleLines()
		var seen []string
		for _, l := range lines {
			if strings.HasPrefix(l, "exception: ") || strings.HasPrefix(l, "error: ") {
				t.Fatalf("the snippet failed: %s", l)
			}
			for _, w := range want {
				if l == w && (len(seen) == 0 || seen[len(seen)-1] != w) {
					seen = append(seen, w)
				}
			}
		}
		if sameStrings(seen, want) {
			t.Logf("the snippet logged %q", lines)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snippet logged %q, want in order %q", lines, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
