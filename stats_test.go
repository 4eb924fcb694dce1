package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/tethertest"
)

// TestStatsAccess: /api/stats has the server API's access rule; the /stats
// page itself is static and carries no figures.
func TestStatsAccess(t *testing.T) {
	for _, tc := range []struct {
		name, key, header string
		want              int
	}{
		{"no key configured, loopback", "", "", http.StatusOK},
		{"key configured, none sent", "s3cret", "", http.StatusUnauthorized},
		{"key configured, wrong one", "s3cret", "Bearer nope", http.StatusUnauthorized},
		{"key configured, right one", "s3cret", "Bearer s3cret", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tethertest.Config()
			cfg.APIKey = tc.key
			n := tethertest.NewNode(t, cfg)
			req, _ := http.NewRequest(http.MethodGet, tethertest.HTTPURL(n, "/api/stats"), nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /api/stats: %d, want %d", resp.StatusCode, tc.want)
			}
			page, err := http.Get(tethertest.HTTPURL(n, "/stats"))
			if err != nil {
				t.Fatal(err)
			}
			page.Body.Close()
			if page.StatusCode != http.StatusOK || page.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("GET /stats: %d %s", page.StatusCode, page.Header.Get("Content-Type"))
			}
		})
	}
}

// TestStatsRates: counters, rates over the span between samples, the busiest
// channels, and one sample per StatsInterval however often it is asked.
func TestStatsRates(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	c := dial(t, n)
	c.subscribe("a")
	// A channel has a position here from its first publication on; its rate,
	// from the next sample on.
	if _, err := n.Publish(context.Background(), "a", json.RawMessage(`0`)); err != nil {
		t.Fatal(err)
	}
	c.read()
	probe, deadline := n.StatsSampler(), time.Now().Add(5*time.Second)
	for i := 1; ; i++ {
		st := probe(time.Now().Add(time.Duration(i) * time.Second))
		if st.Deliveries == 1 && len(st.Busiest) == 1 && st.Busiest[0].Offset == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel a never reached offset 1, with its delivery counted: %+v", st)
		}
		time.Sleep(time.Millisecond)
	}
	sample := n.StatsSampler()
	t0 := time.Now()
	first := sample(t0)
	if first.IntervalSeconds != 0 || first.PublicationsPerSecond != 0 || len(first.Nodes) != 1 || !first.Nodes[0].Self {
		t.Fatalf("first sample %+v", first)
	}
	for i := range 10 {
		if _, err := n.Publish(context.Background(), "a", json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		c.read()
	}
	// The hub counts a batch's deliveries once it has handed it to everyone:
	// wait for the count (a sampler of its own, asked at ever later times).
	probe, deadline = n.StatsSampler(), time.Now().Add(5*time.Second)
	for i := 1; probe(t0.Add(time.Duration(i)*time.Second)).Deliveries != 11; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the 11 deliveries were never counted")
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 5 {
		if _, err := n.Publish(context.Background(), "b", json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if again := sample(t0.Add(tether.StatsInterval / 2)); again.Time != first.Time {
		t.Fatalf("a second sample within StatsInterval: %+v", again)
	}
	st := sample(t0.Add(2 * time.Second))
	// b has no subscriber here: it counts in the node's publications, but it
	// is no channel of this node's.
	want := []tether.ChannelRate{{Channel: "a", Subscribers: 1, Offset: 11, PublicationsPerSecond: 5, DeliveriesPerSecond: 5}}
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"interval", st.IntervalSeconds, 2.0},
		{"publications", st.Publications, int64(16)},
		{"publications/s", st.PublicationsPerSecond, 7.5},
		{"deliveries", st.Deliveries, int64(11)},
		{"deliveries/s", st.DeliveriesPerSecond, 5.0},
		{"connections", st.Connections, tether.StatsByTransport{Total: 1, WebSocket: 1}},
		{"channels", st.Channels, 1},
		{"subscriptions", st.Subscriptions, 1},
		{"busiest", fmt.Sprint(st.Busiest), fmt.Sprint(want)},
		{"sessions opened", st.SessionsOpened, int64(1)},
	} {
		if check.got != check.want {
			t.Errorf("%s = %v, want %v", check.what, check.got, check.want)
		}
	}
	quiet := sample(t0.Add(3 * time.Second)) // nothing published since
	if quiet.PublicationsPerSecond != 0 || len(quiet.Busiest) != 1 || quiet.Busiest[0].PublicationsPerSecond != 0 {
		t.Fatalf("a quiet second: %v/s, busiest %+v", quiet.PublicationsPerSecond, quiet.Busiest)
	}
}
