package serverapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

// fakeBackend answers with err when set, and records the calls it gets.
type fakeBackend struct {
	err error

	mu    sync.Mutex
	calls []string
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) record(call string, ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx == nil {
		panic("nil context")
	}
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeBackend) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeBackend) Publish(ctx context.Context, channel string, data json.RawMessage) (protocol.Position, error) {
	if err := f.record("publish "+channel+" "+string(data), ctx); err != nil {
		return protocol.Position{}, err
	}
	if channel == "full" {
		return protocol.Position{}, protocol.NewError(protocol.ErrTooManyChans, "full")
	}
	return protocol.Position{Epoch: "e", Offset: 7}, nil
}

func (f *fakeBackend) Broadcast(ctx context.Context, channels []string, data json.RawMessage) ([]BroadcastResult, error) {
	if err := f.record("broadcast "+strings.Join(channels, ",")+" "+string(data), ctx); err != nil {
		return nil, err
	}
	return []BroadcastResult{
		{Channel: channels[0], Epoch: "e", Offset: 1},
		{Channel: channels[1], Error: protocol.NewError(protocol.ErrInvalidChannel, "no")},
	}, nil
}

func (f *fakeBackend) History(ctx context.Context, channel string, since *protocol.Position, limit int) (*protocol.HistoryResult, error) {
	call := "history " + channel
	if since != nil {
		call += " since " + since.Epoch
	}
	if err := f.record(call, ctx); err != nil {
		return nil, err
	}
	return &protocol.HistoryResult{Epoch: "e", Offset: 2, Publications: []*protocol.Publication{
		{Channel: channel, Epoch: "e", Offset: 2, Data: json.RawMessage(`"x"`), From: &protocol.ClientInfo{User: "ann"}},
	}}, nil
}

func (f *fakeBackend) Disconnect(ctx context.Context, client string, reconnect bool) error {
	return f.record("disconnect "+client, ctx)
}

func (f *fakeBackend) DisconnectUser(ctx context.Context, user string, reconnect bool) (int, error) {
	return 2, f.record("disconnect user "+user, ctx)
}

func (f *fakeBackend) Unsubscribe(ctx context.Context, user, channel string) (int, error) {
	return 1, f.record("unsubscribe "+user+" "+channel, ctx)
}

func (f *fakeBackend) Presence(ctx context.Context, channel string) ([]protocol.Member, error) {
	if err := f.record("presence "+channel, ctx); err != nil {
		return nil, err
	}
	return []protocol.Member{{Client: "c1", User: "ann", Info: json.RawMessage(`{"n":1}`), ConnectedAt: 1700000000000}}, nil
}

func (f *fakeBackend) PresenceStats(ctx context.Context, channel string) (protocol.PresenceStats, error) {
	if err := f.record("presence_stats "+channel, ctx); err != nil {
		return protocol.PresenceStats{}, err
	}
	return protocol.PresenceStats{Clients: 4, Users: 2}, nil
}

func (f *fakeBackend) Info() Info {
	_ = f.record("info", context.Background())
	return Info{Connections: 3, TCPConnections: 1, ProtocolVersion: 1}
}

// newHTTP serves a's routes and a guarded /metrics on loopback.
func newHTTP(t *testing.T, a *API) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	a.Routes(mux)
	mux.Handle("GET /metrics", a.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "metrics\n")
	})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHTTP(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		key, body    string
		backendErr   error
		status       int
		want         string // in the body
		call         string // the backend's one call; "" for none
	}{
		{"publish", "POST", "/api/publish", "k", `{"channel":"a","data":{"v":1}}`, nil, 200, `{"epoch":"e","offset":7}`, `publish a {"v":1}`},
		{"publish without data", "POST", "/api/publish", "k", `{"channel":"a"}`, nil, 400, `"code":"bad_request"`, ""},
		{"publish malformed", "POST", "/api/publish", "k", `{"channel":`, nil, 400, `malformed JSON body`, ""},
		{"publish too large", "POST", "/api/publish", "k", `{"channel":"a","data":"` + strings.Repeat("x", 300) + `"}`, nil, 413, `larger than 256 bytes`, ""},
		{"publish refused by the backend", "POST", "/api/publish", "k", `{"channel":"a","data":1}`, protocol.NewError(protocol.ErrTooManyChans, "full"), 400, `"code":"too_many_channels"`, "publish a 1"},
		{"publish while shutting down", "POST", "/api/publish", "k", `{"channel":"a","data":1}`, errShutDown, 503, `"code":"unavailable","message":"node is shut down"`, "publish a 1"},
		{"publish, no key", "POST", "/api/publish", "", `{"channel":"a","data":1}`, nil, 401, `"code":"unauthorized"`, ""},
		{"publish, wrong key", "POST", "/api/publish", "x", `{"channel":"a","data":1}`, nil, 401, `missing or wrong API key`, ""},
		{"broadcast", "POST", "/api/broadcast", "k", `{"channels":["a","b c"],"data":1}`, nil, 200, `{"results":[{"channel":"a","epoch":"e","offset":1},{"channel":"b c","error":{"code":"invalid_channel","message":"no"}}]}`, "broadcast a,b c 1"},
		{"broadcast without data", "POST", "/api/broadcast", "k", `{"channels":["a"]}`, nil, 400, `data is required`, ""},
		{"history", "POST", "/api/history", "k", `{"channel":"a","since":{"epoch":"e","offset":1}}`, nil, 200, `"publications":[{"channel":"a","epoch":"e","offset":2,"data":"x","from":{"user":"ann"}}]`, "history a since e"},
		{"disconnect", "POST", "/api/disconnect", "k", `{"client":"c1"}`, nil, 200, `{}`, "disconnect c1"},
		{"disconnect unknown", "POST", "/api/disconnect", "k", `{"client":"c1"}`, errNoSuch, 404, `"code":"bad_request","message":"no such client"`, "disconnect c1"},
		{"disconnect without client", "POST", "/api/disconnect", "k", `{}`, nil, 400, `exactly one of client and user is required`, ""},
		{"disconnect client and user", "POST", "/api/disconnect", "k", `{"client":"c1","user":"ann"}`, nil, 400, `exactly one of client and user is required`, ""},
		{"disconnect user", "POST", "/api/disconnect", "k", `{"user":"ann"}`, nil, 200, `{"disconnected":2}`, "disconnect user ann"},
		{"unsubscribe", "POST", "/api/unsubscribe", "k", `{"user":"ann","channel":"c"}`, nil, 200, `{"unsubscribed":1}`, "unsubscribe ann c"},
		{"unsubscribe without user", "POST", "/api/unsubscribe", "k", `{"channel":"c"}`, nil, 400, `user is required`, ""},
		{"presence", "POST", "/api/presence", "k", `{"channel":"a"}`, nil, 200, `{"members":[{"client":"c1","user":"ann","info":{"n":1},"connected_at":1700000000000}]}`, "presence a"},
		{"presence refused by the backend", "POST", "/api/presence", "k", `{"channel":"a b"}`, protocol.NewError(protocol.ErrInvalidChannel, "no"), 400, `"code":"invalid_channel"`, "presence a b"},
		{"presence, no key", "POST", "/api/presence", "", `{"channel":"a"}`, nil, 401, `"code":"unauthorized"`, ""},
		{"presence stats", "POST", "/api/presence_stats", "k", `{"channel":"a"}`, nil, 200, `{"clients":4,"users":2}`, "presence_stats a"},
		{"info by GET", "GET", "/api/info", "k", ``, nil, 200, `"connections":3`, "info"},
		{"info by POST", "POST", "/api/info", "k", `{}`, nil, 200, `"tcp_connections":1`, "info"},
		{"info, wrong key", "GET", "/api/info", "x", ``, nil, 401, `"code":"unauthorized"`, ""},
		{"metrics", "GET", "/metrics", "k", ``, nil, 200, "metrics", ""},
		{"metrics, no key", "GET", "/metrics", "", ``, nil, 401, `"code":"unauthorized"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackend{err: tt.backendErr}
			srv := newHTTP(t, New(Config{Backend: b, APIKey: "k", MaxBodySize: 256}))
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%d %s, want %d and %s", resp.StatusCode, body, tt.status, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); tt.path != "/metrics" && ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (tt.status == 401) != (got != "") {
				t.Fatalf("WWW-Authenticate %q with status %d", got, resp.StatusCode)
			}
			calls := b.called()
			if tt.call == "" && len(calls) != 0 || tt.call != "" && (len(calls) != 1 || calls[0] != tt.call) {
				t.Fatalf("backend calls %q, want %q", calls, tt.call)
			}
		})
	}
}

// TestHTTPWithoutKey: with no key, loopback callers are served, and a refusal
// says why without a WWW-Authenticate challenge.
func TestHTTPWithoutKey(t *testing.T) {
	b := &fakeBackend{}
	srv := newHTTP(t, New(Config{Backend: b, MaxBodySize: 256}))
	if resp, body := do(t, "POST", srv.URL+"/api/publish", "", `{"channel":"a","data":1}`); resp.StatusCode != 200 {
		t.Fatalf("loopback publish without a key: %d %s", resp.StatusCode, body)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "192.0.2.7:5000"
	New(Config{Backend: b, MaxBodySize: 256}).Guard(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), "loopback clients only") || rec.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("remote caller without a key: %d %s %v", rec.Code, rec.Body, rec.Header())
	}
}
