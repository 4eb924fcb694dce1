package tether_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestChatPageCookieLogin: in real Chromium, the chat page, unchanged,
// authenticates with an HttpOnly login cookie at the WebSocket upgrade: what
// it says carries the cookie's user, whatever name the page claims, and
// what others say shows their authenticated user.
func TestChatPageCookieLogin(t *testing.T) {
	a, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	z, err := namespaces.New(namespaces.Secure, []namespaces.Namespace{{Name: "chat", Subscribe: namespaces.Users, Publish: namespaces.Users}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer, cfg.TokenCookie = a, z, "tether_session"
	e := startEnv(t, cfg, false)
	bob := e.dialWS()
	checkReply(t, bob.call(protocol.Command{Op: protocol.OpConnect, Token: sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("bob"))}), "")
	bob.subscribe("chat:cookies", nil)

	b := newBrowser(t, 40*time.Second)
	ann := b.open("ann", e.httpURL("/healthz"))
	cookie := sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims("ann"))
	ann.run(10*time.Second, "log in",
		chromedp.ActionFunc(func(ctx context.Context) error {
			return network.SetCookie("tether_session", cookie).WithURL(e.httpURL("/")).WithHTTPOnly(true).Do(ctx)
		}),
		chromedp.Navigate(e.httpURL("/?shared=0#cookies")),
	)
	ann.waitFor(10*time.Second, `document.getElementById("status").dataset.state === "connected" && window.chat?.room() === "cookies"`, `document.getElementById("status").textContent`)
	var httpOnly bool
	ann.eval(`!document.cookie.includes("tether_session")`, &httpOnly)
	if !httpOnly {
		t.Fatal("the page can read the login cookie")
	}
	ann.run(5*time.Second, "claim a name", chromedp.SetValue("#name", "mallory", chromedp.ByID))
	ann.run(5*time.Second, "say hello",
		chromedp.SendKeys("#text", "hello from the page", chromedp.ByID),
		chromedp.Click("#send button", chromedp.ByQuery),
	)
	m := bob.untilPub()
	if m.From == nil || m.From.User != "ann" {
		t.Fatalf("the page's publication comes from %+v, want user ann", m.From)
	}
	checkReply(t, bob.call(protocol.Command{Op: protocol.OpPublish, Channel: "chat:cookies", Data: json.RawMessage(`{"name":"ann","text":"hi from bob"}`)}), "")
	ann.waitFor(10*time.Second, `document.getElementById("log").textContent.includes("bob:hi from bob")`, `document.getElementById("log").textContent`)
}
