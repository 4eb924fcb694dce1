package tether_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	"github.com/tetherhq/tether/auth/namespaces"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestPermissions: namespace rule x operation x identity, each with its
// reply. Each namespace below sets every operation to one rule; "news" has
// no namespace and takes the secure default.
func TestPermissions(t *testing.T) {
	a, err := jwt.New(jwt.Config{HMACSecret: []byte(testSecret), AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	rule := func(name string, r namespaces.Rule) namespaces.Namespace {
		return namespaces.Namespace{Name: name, Subscribe: r, Publish: r, History: r, Presence: r}
	}
	z, err := namespaces.New(namespaces.Secure, []namespaces.Namespace{
		rule("pub", namespaces.All), rule("chat", namespaces.Users), rule("private", namespaces.Granted),
		rule("locked", namespaces.None), rule("dm", namespaces.Users),
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer = a, z
	e := startEnv(t, cfg, false)

	hs := func(c gojwt.MapClaims) string { return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", c) }
	subToken := func(user, channel string) string {
		return hs(gojwt.MapClaims{"sub": user, "channel": channel, "exp": time.Now().Add(time.Hour).Unix()})
	}
	type identity struct {
		name     string
		token    string
		subToken bool // subscribe with a subscription token for the channel first
	}
	anon := identity{"anonymous", "", false}
	user := identity{"user", hs(userClaims("ann")), false}
	granted := identity{"granted by token", hs(with(userClaims("ann"), "channels", []string{"private:x", "locked:x", "chat:x", "pub:x"})), false}
	bySub := identity{"granted by subscription token", hs(userClaims("ann")), true}
	eve := identity{"not a member", hs(userClaims("eve")), false}

	const ok, denied = "", protocol.ErrPermission
	tests := []struct {
		channel string
		id      identity
		want    [3]string // subscribe, publish, history
	}{
		{"pub:x", anon, [3]string{ok, ok, ok}},
		{"pub:x", user, [3]string{ok, ok, ok}},
		{"chat:x", anon, [3]string{denied, denied, denied}},
		{"chat:x", user, [3]string{ok, ok, ok}},
		{"chat:x", granted, [3]string{ok, ok, ok}},
		{"private:x", anon, [3]string{denied, denied, denied}},
		{"private:x", user, [3]string{denied, denied, denied}},
		{"private:x", granted, [3]string{ok, ok, ok}},
		{"private:x", bySub, [3]string{ok, ok, ok}},
		{"private:y", granted, [3]string{denied, denied, denied}},
		{"locked:x", anon, [3]string{denied, denied, denied}},
		{"locked:x", granted, [3]string{denied, denied, denied}},
		{"locked:x", bySub, [3]string{denied, denied, denied}},
		{"news", anon, [3]string{denied, denied, denied}},
		{"news", user, [3]string{ok, denied, ok}},
		{"unknown:x", user, [3]string{ok, denied, ok}},
		{"dm:#ann,bob", user, [3]string{ok, ok, ok}},
		{"dm:#ann,bob", eve, [3]string{denied, denied, denied}},
		{"dm:#ann,bob", anon, [3]string{denied, denied, denied}},
		{"dm:#bob,ann", user, [3]string{ok, ok, ok}},
		{"dm:#annie,bob", user, [3]string{denied, denied, denied}},
		{"pub:#bob", user, [3]string{denied, denied, denied}}, // a user list binds even where all may
		{"private:#ann", user, [3]string{ok, ok, ok}},
		{"locked:#ann", user, [3]string{denied, denied, denied}},
	}
	ops := []string{protocol.OpSubscribe, protocol.OpPublish, protocol.OpHistory}
	for _, tt := range tests {
		for i, op := range ops {
			t.Run(fmt.Sprintf("%s/%s/%s", tt.channel, tt.id.name, op), func(t *testing.T) {
				c := e.dialWS()
				if m := c.call(protocol.Command{Op: protocol.OpConnect, Token: tt.id.token}); m.Error != nil {
					t.Fatalf("connect: %v", m.Error)
				}
				if tt.id.subToken {
					m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: tt.channel, Token: subToken("ann", tt.channel)})
					if op == protocol.OpSubscribe {
						checkReply(t, m, tt.want[i])
						return
					}
				}
				cmd := protocol.Command{Op: op, Channel: tt.channel}
				if op == protocol.OpPublish {
					cmd.Data = json.RawMessage(`{"text":"hi"}`)
				}
				checkReply(t, c.call(cmd), tt.want[i])
			})
		}
	}
}

// TestSubscriptionTokenBinds: a subscription token grants its own channel
// to its own user, and not past an unsubscribe.
func TestSubscriptionTokenBinds(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	z, _ := namespaces.New(namespaces.Secure, []namespaces.Namespace{{Name: "private", Subscribe: namespaces.Granted, History: namespaces.Granted}})
	cfg := tethertest.Config()
	cfg.Authenticator, cfg.Authorizer = a, z
	e := startEnv(t, cfg, false)
	hs := func(c gojwt.MapClaims) string { return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", c) }
	exp := time.Now().Add(time.Hour).Unix()
	c := e.dialWS()
	c.call(protocol.Command{Op: protocol.OpConnect, Token: hs(userClaims("ann"))})
	for _, tc := range []struct {
		channel, token, want string
	}{
		{"private:x", hs(gojwt.MapClaims{"sub": "bob", "channel": "private:x", "exp": exp}), protocol.ErrPermission},
		{"private:x", hs(gojwt.MapClaims{"sub": "ann", "channel": "private:y", "exp": exp}), protocol.ErrPermission},
		{"private:x", hs(gojwt.MapClaims{"sub": "ann", "channel": "private:x", "exp": exp - 7200}), protocol.ErrTokenExpired},
		{"private:x", hs(gojwt.MapClaims{"sub": "ann", "channel": "private:x", "exp": exp}), ""},
	} {
		checkReply(t, c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: tc.channel, Token: tc.token}), tc.want)
	}
	checkReply(t, c.call(protocol.Command{Op: protocol.OpHistory, Channel: "private:x"}), "")
	checkReply(t, c.call(protocol.Command{Op: protocol.OpUnsubscribe, Channel: "private:x"}), "")
	checkReply(t, c.call(protocol.Command{Op: protocol.OpHistory, Channel: "private:x"}), protocol.ErrPermission)
}

func checkReply(t *testing.T, m message, code string) {
	t.Helper()
	switch {
	case code == "" && m.Error != nil:
		t.Fatalf("got %v, want a result", m.Error)
	case code != "" && (m.Error == nil || m.Error.Code != code):
		t.Fatalf("got %+v %s, want %s", m.Error, m.Result, code)
	}
}
