package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browser is a headless Chromium for one test. Its tabs are closed when the
// test ends; when the test failed, each open tab's screenshot and console are
// saved first, in artefactDir.
type browser struct {
	t           *testing.T
	alloc       context.Context
	first       context.Context // a blank tab that owns the browser process
	cancelFirst context.CancelFunc
	mu          sync.Mutex
	tabs        []*tab
}

// tab is one browser tab.
type tab struct {
	b      *browser
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	closed bool

	mu      sync.Mutex
	console []string
}

// newBrowser starts nothing yet: the first tab starts Chromium. Everything the
// browser does must end within limit.
func newBrowser(t *testing.T, limit time.Duration) *browser {
	t.Helper()
	path := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1000, 700),
		chromedp.UserDataDir(profileDir(t)),
	)
	// The allocator outlives the test's own deadline a little, so that a test
	// that timed out can still take its screenshots.
	ctx, cancel := context.WithTimeout(context.Background(), limit+15*time.Second)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	b := &browser{t: t, alloc: alloc}
	t.Cleanup(func() {
		if t.Failed() {
			b.saveArtefacts()
		}
		b.mu.Lock()
		tabs := b.tabs
		b.mu.Unlock()
		for i := len(tabs) - 1; i >= 0; i-- {
			tabs[i].cancel()
		}
		if b.cancelFirst != nil {
			b.cancelFirst()
		}
		cancelAlloc()
		cancel()
	})
	return b
}

// open opens url in a new tab and waits for its load event.
func (b *browser) open(name, url string) *tab {
	b.t.Helper()
	if b.first == nil {
		// A blank tab owns the browser process, so that a test may close any
		// of its own tabs.
		owner, cancel := chromedp.NewContext(b.alloc)
		b.cancelFirst = cancel
		if err := chromedp.Run(owner); err != nil {
			b.t.Fatalf("start chromium: %v", err)
		}
		b.first = owner
	}
	ctx, cancel := chromedp.NewContext(b.first)
	tb := &tab{b: b, name: name, ctx: ctx, cancel: cancel}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				var str string
				switch {
				case a.Value == nil:
					args = append(args, a.Description)
				case json.Unmarshal(a.Value, &str) == nil:
					args = append(args, str) // a string, as console.log prints it
				default:
					args = append(args, string(a.Value))
				}
			}
			tb.log(string(ev.Type) + ": " + strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			tb.log("exception: " + ev.ExceptionDetails.Error())
		}
	})
	// The first Run on a context starts the browser or the tab, and ties it to
	// the context it is given: the tab's own, not one with a timeout.
	if err := chromedp.Run(ctx); err != nil {
		b.t.Fatalf("%s: start: %v", name, err)
	}
	tb.run(10*time.Second, "open "+url, chromedp.Navigate(url))
	return tb
}

func (tb *tab) log(line string) {
	tb.mu.Lock()
	tb.console = append(tb.console, line)
	tb.mu.Unlock()
}

// consoleLines returns what the tab's page logged so far.
func (tb *tab) consoleLines() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.console...)
}

// run runs actions, failing the test after limit.
func (tb *tab) run(limit time.Duration, what string, actions ...chromedp.Action) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, limit)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		tb.b.t.Fatalf("%s: %s: %v", tb.name, what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into out.
func (tb *tab) eval(js string, out any) {
	tb.b.t.Helper()
	tb.run(10*time.Second, "eval "+js, chromedp.Evaluate(js, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
}

// waitFor polls a JavaScript condition until it holds, failing the test
// after limit with what describe (an expression) says then.
func (tb *tab) waitFor(limit time.Duration, cond, describe string) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, limit)
	defer cancel()
	err := chromedp.Run(ctx, chromedp.Poll(cond, nil, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(limit)))
	if err != nil {
		var state any
		if describe != "" {
			dctx, dcancel := context.WithTimeout(tb.ctx, 2*time.Second)
			_ = chromedp.Run(dctx, chromedp.Evaluate(describe, &state))
			dcancel()
		}
		tb.b.t.Fatalf("%s: waited %v for %s: %v; %s is %v", tb.name, limit, cond, err, describe, state)
	}
}

// setOffline takes the tab off the network, or puts it back. Chromium 156
// keeps an open WebSocket across this emulation (it neither closes it nor
// reliably stops its traffic), but it sets navigator.onLine, fires the
// offline and online events, and fails new connections; tether.js drops its
// connection on `offline` itself. docs/browser.md has the details.
func (tb *tab) setOffline(off bool) {
	tb.b.t.Helper()
	tb.run(5*time.Second, fmt.Sprintf("offline %v", off), network.Enable(), chromedp.ActionFunc(func(ctx context.Context) error {
		rules := []*network.Conditions{{URLPattern: "", DownloadThroughput: -1, UploadThroughput: -1}}
		if _, err := network.EmulateNetworkConditionsByRule(off, rules).Do(ctx); err != nil {
			return err
		}
		return network.OverrideNetworkState(off, 0, -1, -1).Do(ctx)
	}))
}

// close closes the tab as a user would (its page is unloaded).
func (tb *tab) close() {
	tb.b.t.Helper()
	tb.b.mu.Lock()
	tb.closed = true
	tb.b.mu.Unlock()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Cancel(ctx); err != nil && tb.ctx.Err() == nil {
		tb.b.t.Fatalf("close %s: %v", tb.name, err)
	}
}

// artefactDir is where failed browser tests leave their screenshots and
// console logs: $TETHER_ARTEFACTS, or artefacts/ in the repository.
func artefactDir(t *testing.T) string {
	root := os.Getenv("TETHER_ARTEFACTS")
	if root == "" {
		root = "artefacts"
	}
	dir, err := filepath.Abs(filepath.Join(root, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")))
	if err != nil {
		return root
	}
	return dir
}

// saveArtefacts saves a screenshot and the console of every open tab.
func (b *browser) saveArtefacts() {
	dir := artefactDir(b.t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Logf("artefacts: %v", err)
		return
	}
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for i, tb := range tabs {
		base := filepath.Join(dir, fmt.Sprintf("%d-%s", i, tb.name))
		if err := os.WriteFile(base+".console.txt", []byte(strings.Join(tb.consoleLines(), "\n")+"\n"), 0o644); err != nil {
			b.t.Logf("artefacts: %v", err)
		}
		if tb.closed {
			continue
		}
		var png []byte
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png))
		cancel()
		if err != nil {
			b.t.Logf("artefacts: screenshot of %s: %v", tb.name, err)
			continue
		}
		if err := os.WriteFile(base+".png", png, 0o644); err != nil {
			b.t.Logf("artefacts: %v", err)
		}
	}
	b.t.Logf("screenshots and consoles of the failed test's tabs are in %s", dir)
}

// chatMessages returns the texts of the messages a chat tab shows, in order.
func chatMessages(tb *tab) []string {
	tb.b.t.Helper()
	var texts []string
	tb.eval(`[...document.querySelectorAll("#log li[data-key]")].map((li) => li.lastChild.textContent)`, &texts)
	return texts
}

// numberedTexts returns prefix1 .. prefixN.
func numberedTexts(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}
