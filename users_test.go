package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/tetherhq/tether/auth/jwt"
	tclient "github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestUnsubscribeAndDisconnectUser: the server API unsubscribes every
// connection of a user from a channel (an unsubscribe push, other users
// untouched), then disconnects them all, on every transport.
func TestUnsubscribeAndDisconnectUser(t *testing.T) {
	a, _ := jwt.New(jwt.Config{HMACSecret: []byte(testSecret)})
	cfg := tethertest.Config()
	cfg.Authenticator = a
	e := startEnv(t, cfg, false)
	hs := func(user string) string {
		return sign(t, gojwt.SigningMethodHS256, []byte(testSecret), "", userClaims(user))
	}
	anns := e.dialAll()
	bob := e.dialWS()
	for _, c := range append(anns, bob) {
		user := "ann"
		if c == bob {
			user = "bob"
		}
		checkReply(t, c.call(protocol.Command{Op: protocol.OpConnect, Token: hs(user)}), "")
		c.subscribe("news", nil)
	}
	events := make(chan tclient.Event, 8)
	gc, err := tclient.Dial(context.Background(), "ws://"+e.n.Addr().String()+"/ws", tclient.WithToken(hs("ann")),
		tclient.WithEventHandler(func(ev tclient.Event) { events <- ev }))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if _, err := gc.Subscribe(context.Background(), "news", func(*protocol.Publication) {}); err != nil {
		t.Fatal(err)
	}

	status, body := e.postAPI("/api/unsubscribe", "", `{"user":"ann","channel":"news"}`)
	if status != 200 || !strings.Contains(string(body), `{"unsubscribed":4}`) {
		t.Fatalf("unsubscribe: %d %s", status, body)
	}
	for _, c := range anns {
		m := c.read()
		if m.Op != protocol.PushUnsubscribe || m.Channel != "news" || m.Code != protocol.UnsubscribeServer {
			t.Fatalf("%s: got %+v, want an unsubscribe push", c.name, m)
		}
	}
	for ev := range events {
		if ev.Type == tclient.Unsubscribed {
			if ev.Channel != "news" || !errors.Is(ev.Err, tclient.ErrUnsubscribed) {
				t.Fatalf("event %+v", ev)
			}
			break
		}
	}
	if _, err := e.n.Publish(context.Background(), "news", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	if m := bob.untilPub(); m.Offset != 1 {
		t.Fatalf("bob got %+v", m)
	}
	for _, c := range anns { // the next message is the ping's reply: no publication came
		id := c.send(protocol.Command{Op: protocol.OpPing})
		if m := c.read(); m.ID != id {
			t.Fatalf("%s: got %+v after the unsubscribe", c.name, m)
		}
	}

	n, err := e.n.DisconnectUser(context.Background(), "ann", false)
	if err != nil || n != 4 {
		t.Fatalf("DisconnectUser: %d, %v", n, err)
	}
	for _, c := range anns {
		if m := c.read(); m.Op != protocol.PushDisconnect || m.Code != protocol.CloseForceDisconnect || m.Reconnect {
			t.Fatalf("%s: got %+v, want disconnect 4500", c.name, m)
		}
	}
	checkReply(t, bob.call(protocol.Command{Op: protocol.OpPing}), "")
}
