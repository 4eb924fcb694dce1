package tether_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// client is a test protocol client over coder/websocket.
type client struct {
	t    testing.TB
	c    *websocket.Conn
	next uint64
}

func dial(t testing.TB, n *tether.Node) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, tethertest.WSURL(n, "/ws"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 22)
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, c: c}
}

func (c *client) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send sends cmd with a fresh id and returns the id.
func (c *client) send(cmd protocol.Command) uint64 {
	c.t.Helper()
	c.next++
	cmd.ID = c.next
	b, _ := json.Marshal(cmd)
	c.sendRaw(websocket.MessageText, b)
	return cmd.ID
}

// message is anything the server sends: a reply or a push.
type message struct {
	ID     uint64          `json:"id"`
	Op     string          `json:"op"`
	Result json.RawMessage `json:"result"`
	Error  *protocol.Error `json:"error"`

	Channel   string               `json:"channel"`
	Epoch     string               `json:"epoch"`
	Offset    uint64               `json:"offset"`
	Data      json.RawMessage      `json:"data"`
	From      *protocol.ClientInfo `json:"from"`
	Code      int                  `json:"code"`
	Reconnect bool                 `json:"reconnect"`
}

// read returns the next message, failing the test after 5s.
func (c *client) read() message {
	c.t.Helper()
	m, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// tryRead returns the next message other than a heartbeat ping (a
// connection's ping point falls anywhere in the ping interval, so any test
// may see one), or an error after d.
func (c *client) tryRead(d time.Duration) (message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		typ, b, err := c.c.Read(ctx)
		if err != nil {
			return message{}, err
		}
		var m message
		if typ != websocket.MessageText {
			return m, errors.New("binary message")
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return m, err
		}
		if !isPing(m) {
			return m, nil
		}
	}
}

// call sends cmd and returns its reply, failing on pushes in between.
func (c *client) call(cmd protocol.Command) message {
	c.t.Helper()
	id := c.send(cmd)
	m := c.read()
	if m.ID != id {
		c.t.Fatalf("got %+v, want the reply to %d", m, id)
	}
	return m
}

func (c *client) subscribe(channel string) protocol.SubscribeResult {
	c.t.Helper()
	m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: channel})
	if m.Error != nil {
		c.t.Fatalf("subscribe %s: %v", channel, m.Error)
	}
	var res protocol.SubscribeResult
	if err := json.Unmarshal(m.Result, &res); err != nil {
		c.t.Fatal(err)
	}
	return res
}

// closeStatus reads until the connection closes and returns its close code.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, _, err := c.c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func postJSON(t testing.TB, url, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
