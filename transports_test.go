package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// publisher publishes data to channel one way and returns the position given.
type publisher func(t *testing.T, e *env, channel string, data string) protocol.Position

func streamPublisher(dial func(*env) *pconn) publisher {
	var c *pconn
	return func(t *testing.T, e *env, channel, data string) protocol.Position {
		t.Helper()
		if c == nil {
			c = dial(e)
		}
		m := c.call(protocol.Command{Op: protocol.OpPublish, Channel: channel, Data: json.RawMessage(data)})
		if m.Error != nil {
			t.Fatalf("%s publish: %v", c.name, m.Error)
		}
		var pos protocol.Position
		if err := json.Unmarshal(m.Result, &pos); err != nil {
			t.Fatal(err)
		}
		return pos
	}
}

func httpPublisher(t *testing.T, e *env, channel, data string) protocol.Position {
	t.Helper()
	status, body := e.postAPI("/api/publish", "", fmt.Sprintf(`{"channel":%q,"data":%s}`, channel, data))
	var pos protocol.Position
	if status != http.StatusOK || json.Unmarshal(body, &pos) != nil {
		t.Fatalf("POST /api/publish: %d %s", status, body)
	}
	return pos
}

func grpcAPIPublisher(t *testing.T, e *env, channel, data string) protocol.Position {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := tetherv1.NewServerAPIClient(e.grpcConn()).Publish(ctx, &tetherv1.PublishRequest{Channel: channel, Data: data})
	if err != nil {
		t.Fatalf("gRPC Publish: %v", err)
	}
	return protocol.Position{Epoch: res.GetPosition().GetEpoch(), Offset: res.GetPosition().GetOffset()}
}

// TestCrossTransport publishes over each of WebSocket, TCP, gRPC stream, HTTP
// API and gRPC API and checks that subscribers on all three streaming
// transports get every publication, in order, with the epoch and offset the
// publisher was given; over plaintext and over TLS.
func TestCrossTransport(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "tls"}[secure], func(t *testing.T) {
			e := startEnv(t, tethertest.Config(), secure)
			tests := []struct {
				name string
				pub  publisher
			}{
				{"websocket", streamPublisher((*env).dialWS)},
				{"tcp", streamPublisher((*env).dialTCP)},
				{"grpc stream", streamPublisher((*env).dialGRPC)},
				{"http api", httpPublisher},
				{"grpc api", grpcAPIPublisher},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					e.t = t
					channel := "x:" + strings.ReplaceAll(tt.name, " ", "-")
					subs := e.dialAll()
					epoch := ""
					for _, s := range subs {
						res := s.subscribe(channel, nil)
						if epoch == "" {
							epoch = res.Epoch
						}
						if res.Epoch != epoch || res.Offset != 0 {
							t.Fatalf("%s: subscribe gave %+v, want epoch %s offset 0", s.name, res, epoch)
						}
					}
					const count = 5
					var sent []protocol.Position
					for i := range count {
						pos := tt.pub(t, e, channel, fmt.Sprintf(`{"i":%d}`, i))
						if pos.Epoch != epoch || pos.Offset != uint64(i+1) {
							t.Fatalf("publish %d: position %+v, want %s/%d", i, pos, epoch, i+1)
						}
						sent = append(sent, pos)
					}
					for _, s := range subs {
						for i, want := range sent {
							m := s.untilPub()
							if m.Channel != channel || m.Epoch != want.Epoch || m.Offset != want.Offset || string(m.Data) != fmt.Sprintf(`{"i":%d}`, i) {
								t.Fatalf("%s: got %+v, want %s/%d data {\"i\":%d}", s.name, m, want.Epoch, want.Offset, i)
							}
						}
					}
				})
			}
		})
	}
}

// TestRecoveryAcrossTransports subscribes on one transport, leaves, lets
// publications pass, and recovers them on reconnect.
func TestRecoveryAcrossTransports(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	tests := []struct {
		name string
		dial func(*env) *pconn
	}{
		{"websocket", (*env).dialWS},
		{"tcp", (*env).dialTCP},
		{"grpc stream", (*env).dialGRPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			channel := "recover:" + strings.ReplaceAll(tt.name, " ", "-")
			c := tt.dial(e)
			first := c.subscribe(channel, nil)
			if _, err := e.n.Publish(context.Background(), channel, json.RawMessage(`1`)); err != nil {
				t.Fatal(err)
			}
			seen := c.untilPub()
			c.w.close()
			for i := 2; i <= 4; i++ {
				if _, err := e.n.Publish(context.Background(), channel, json.RawMessage(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			c = tt.dial(e)
			res := c.subscribe(channel, &protocol.Position{Epoch: seen.Epoch, Offset: seen.Offset})
			if !res.Recovered || res.Epoch != first.Epoch || res.Offset != 4 || len(res.Publications) != 3 {
				t.Fatalf("recover: %+v, want recovered offsets 2..4", res)
			}
			for i, p := range res.Publications {
				if p.Offset != uint64(i+2) || string(p.Data) != fmt.Sprint(i+2) {
					t.Fatalf("recovered publication %d: %+v", i, p)
				}
			}
		})
	}
}

// TestShutdownAllTransports checks that every transport's client is told to
// reconnect when the node shuts down.
func TestShutdownAllTransports(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	clients := e.dialAll()
	for _, c := range clients {
		c.subscribe("x", nil)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.n.Shutdown(ctx)
	}()
	for _, c := range clients {
		m := c.read()
		if m.Op != protocol.PushDisconnect || !m.Reconnect || m.Code != protocol.CloseGoingAway {
			t.Fatalf("%s: got %+v, want disconnect push with reconnect and code 1001", c.name, m)
		}
		if _, err := c.tryRead(5 * time.Second); err == nil {
			t.Fatalf("%s: still open after the disconnect push", c.name)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestServerAPIDisconnect disconnects clients by id over the HTTP and gRPC APIs.
func TestServerAPIDisconnect(t *testing.T) {
	cfg := tethertest.Config()
	cfg.APIKey = "k"
	e := startEnv(t, cfg, false)
	auth := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer k")
	api := tetherv1.NewServerAPIClient(e.grpcConn())
	tests := []struct {
		name      string
		dial      func(*env) *pconn
		reconnect bool
		viaGRPC   bool
		code      int
	}{
		{"tcp via http, reconnect", (*env).dialTCP, true, false, protocol.CloseForceReconnect},
		{"grpc stream via grpc, no reconnect", (*env).dialGRPC, false, true, protocol.CloseForceDisconnect},
		{"websocket via grpc", (*env).dialWS, true, true, protocol.CloseForceReconnect},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			c := tt.dial(e)
			id := c.clientID()
			if tt.viaGRPC {
				ctx, cancel := context.WithTimeout(auth, 5*time.Second)
				defer cancel()
				if _, err := api.Disconnect(ctx, &tetherv1.DisconnectRequest{Client: id, Reconnect: tt.reconnect}); err != nil {
					t.Fatalf("gRPC Disconnect: %v", err)
				}
			} else if status, body := e.postAPI("/api/disconnect", "k", fmt.Sprintf(`{"client":%q,"reconnect":%v}`, id, tt.reconnect)); status != http.StatusOK {
				t.Fatalf("POST /api/disconnect: %d %s", status, body)
			}
			m := c.read()
			if m.Op != protocol.PushDisconnect || m.Code != tt.code || m.Reconnect != tt.reconnect {
				t.Fatalf("got %+v, want disconnect code %d reconnect %v", m, tt.code, tt.reconnect)
			}
		})
	}
	e.t = t
	if status, _ := e.postAPI("/api/disconnect", "k", `{"client":"nobody"}`); status != http.StatusNotFound {
		t.Fatalf("disconnect of an unknown client: status %d, want 404", status)
	}
}

// TestServerAPIBroadcastInfoHistory exercises the rest of the server API over
// HTTP and gRPC.
func TestServerAPIBroadcastInfoHistory(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	a, b := e.dialTCP(), e.dialGRPC()
	a.subscribe("a", nil)
	b.subscribe("b", nil)
	status, body := e.postAPI("/api/broadcast", "", `{"channels":["a","b","bad channel"],"data":{"n":1}}`)
	var res struct {
		Results []struct {
			Channel string
			Offset  uint64
			Error   *protocol.Error
		}
	}
	if status != http.StatusOK || json.Unmarshal(body, &res) != nil || len(res.Results) != 3 ||
		res.Results[0].Offset != 1 || res.Results[1].Offset != 1 || res.Results[2].Error == nil {
		t.Fatalf("POST /api/broadcast: %d %s", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	api := tetherv1.NewServerAPIClient(e.grpcConn())
	gres, err := api.Broadcast(ctx, &tetherv1.BroadcastRequest{Channels: []string{"a", "b"}, Data: `{"n":2}`})
	if err != nil || len(gres.GetResults()) != 2 || gres.GetResults()[1].GetPosition().GetOffset() != 2 {
		t.Fatalf("gRPC Broadcast: %v %v", gres, err)
	}
	for _, c := range []*pconn{a, b} {
		for want := uint64(1); want <= 2; want++ {
			if m := c.untilPub(); m.Offset != want || string(m.Data) != fmt.Sprintf(`{"n":%d}`, want) {
				t.Fatalf("%s: got %+v, want offset %d", c.name, m, want)
			}
		}
	}
	hist, err := api.History(ctx, &tetherv1.HistoryRequest{Channel: "a", Since: &tetherv1.Position{Epoch: "", Offset: 0}})
	if err != nil || len(hist.GetPublications()) != 2 || hist.GetPublications()[1].GetData() != `{"n":2}` {
		t.Fatalf("gRPC History: %v %v", hist, err)
	}
	status, body = e.postAPI("/api/history", "", `{"channel":"a","limit":1}`)
	var hres protocol.HistoryResult
	if status != http.StatusOK || json.Unmarshal(body, &hres) != nil || len(hres.Publications) != 1 || hres.Offset != 2 {
		t.Fatalf("POST /api/history: %d %s", status, body)
	}
	info, err := api.Info(ctx, &tetherv1.InfoRequest{})
	if err != nil || info.GetTcpConnections() != 1 || info.GetGrpcConnections() != 1 || info.GetSubscriptions() != 2 {
		t.Fatalf("gRPC Info: %v %v", info, err)
	}
	status, body = e.postAPI("/api/info", "", `{}`)
	var hinfo struct {
		TCPConnections int64 `json:"tcp_connections"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &hinfo) != nil || hinfo.TCPConnections != 1 {
		t.Fatalf("POST /api/info: %d %s", status, body)
	}
	if res, err := api.Presence(ctx, &tetherv1.PresenceRequest{Channel: "a"}); err != nil || len(res.GetMembers()) != 0 {
		t.Fatalf("gRPC Presence of a channel without presence: %v %v", res, err)
	}
}
