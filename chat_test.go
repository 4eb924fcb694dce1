package tether_test

import (
	"context"
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
// what one tab sends in a room, the other shows.
func TestChatPage(t *testing.T) {
	path := chromium(t)
	n := tethertest.NewNode(t, tethertest.Config())
	url := tethertest.HTTPURL(n, "/")

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profileDir(t)),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	ann, cancelAnn := chromedp.NewContext(actx)
	defer cancelAnn()

	online := func() chromedp.Action {
		return chromedp.Poll(`document.getElementById("status").textContent === "online"`, nil, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))
	}
	join := func(ctx context.Context, name string) {
		t.Helper()
		err := chromedp.Run(ctx,
			chromedp.Navigate(url),
			online(), // the page's script has run and joined the default room
			chromedp.SetValue("#name", name, chromedp.ByID),
			chromedp.SetValue("#room", "test room", chromedp.ByID),
			chromedp.Click("#join", chromedp.ByID),
			online(),
			chromedp.WaitEnabled("#text", chromedp.ByID),
		)
		if err != nil {
			t.Fatalf("%s joins: %v", name, err)
		}
	}
	say := func(ctx context.Context, text string) {
		t.Helper()
		if err := chromedp.Run(ctx,
			chromedp.SendKeys("#text", text, chromedp.ByID),
			chromedp.Click("#send button", chromedp.ByQuery),
		); err != nil {
			t.Fatalf("say %q: %v", text, err)
		}
	}
	waitLog := func(ctx context.Context, want string) {
		t.Helper()
		js := `document.getElementById("log").textContent.includes(` + jsString(want) + `)`
		if err := chromedp.Run(ctx, chromedp.Poll(js, nil, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			var log, status string
			_ = chromedp.Run(ctx, chromedp.Text("#log", &log, chromedp.ByID), chromedp.Text("#status", &status, chromedp.ByID))
			t.Fatalf("log never showed %q: %v; log is %q, status %q", want, err, log, status)
		}
	}

	join(ann, "ann")                           // starts the browser
	bob, cancelBob := chromedp.NewContext(ann) // a second tab in it
	defer cancelBob()
	join(bob, "bob")
	say(ann, "hello from ann")
	waitLog(bob, "ann:hello from ann")
	say(bob, "hi ann")
	waitLog(ann, "bob:hi ann")
	waitLog(ann, "ann:hello from ann") // a tab shows its own messages too
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
