package tether_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tetherhq/tether/tethertest"
)

// chromium returns the browser's path, skipping the test when there is none
// unless TETHER_REQUIRE_BROWSER is set (make test sets it, after installing it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TETHER_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH, and TETHER_REQUIRE_BROWSER is set")
	}
	t.Skip("no chromium on PATH (make test installs it)")
	return ""
}

// TestChatPage drives the chat page in two tabs of a real headless Chromium:
// what one tab says in a room, the other shows, both ways. ann uses the page
// as served (the connection shared through a SharedWorker); bob has one of
// his own (?shared=0).
func TestChatPage(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	b := newBrowser(t, 40*time.Second)
	ann := b.open("ann", tethertest.HTTPURL(n, "/#test-room"))
	bob := b.open("bob", tethertest.HTTPURL(n, "/?shared=0#test-room"))
	for _, tb := range []*tab{ann, bob} {
		tb.waitFor(10*time.Second, `document.getElementById("status").dataset.state === "connected" && window.chat?.room() === "test-room"`, `document.getElementById("status").textContent`)
		tb.run(5*time.Second, "set the name", chromedp.SetValue("#name", tb.name, chromedp.ByID))
	}
	var mode string
	ann.eval(`chat.client.mode`, &mode)
	if mode != "worker" {
		t.Errorf("ann's page shares its connection by %q, want worker", mode)
	}
	// This server keeps no presence (no namespaces): the members list stays hidden.
	ann.waitFor(5*time.Second, `document.getElementById("members").dataset.presence === "permission_denied" && document.getElementById("members").hidden`, `document.getElementById("members").dataset.presence`)
	say := func(tb *tab, text string) {
		t.Helper()
		tb.run(5*time.Second, "say "+text,
			chromedp.SendKeys("#text", text, chromedp.ByID),
			chromedp.Click("#send button", chromedp.ByQuery),
		)
	}
	shows := func(tb *tab, want string) {
		t.Helper()
		tb.waitFor(10*time.Second, `document.getElementById("log").textContent.includes(`+jsString(want)+`)`, `document.getElementById("log").textContent`)
	}
	say(ann, "hello from ann")
	shows(bob, "ann:hello from ann")
	say(bob, "hi ann")
	shows(ann, "bob:hi ann")
	shows(ann, "ann:hello from ann") // a tab shows its own messages too
}

// profileDir returns a fresh browser profile directory. It is removed when the
// test ends, best effort: Chromium's helpers may still be writing to it then,
// which would fail a t.TempDir's cleanup.
func profileDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "tether-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
