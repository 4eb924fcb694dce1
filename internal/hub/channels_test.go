package hub

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/tetherhq/tether/protocol"
)

func TestEachChannel(t *testing.T) {
	h := New(Config{HistorySize: 10})
	defer h.Close()
	a, b := newRecorder(), newRecorder()
	noReply := func(*protocol.SubscribeResult) {}
	for _, sub := range []struct {
		channel string
		s       Subscriber
	}{{"two", a}, {"two", b}, {"one", a}} {
		if err := h.Subscribe(sub.channel, sub.s, nil, noReply); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []string{"two", "two", "two", "history-only"} {
		if _, err := h.Publish(ch, json.RawMessage(`1`), nil); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]ChannelStats{}
	h.EachChannel(func(cs ChannelStats) {
		if cs.Epoch == "" {
			t.Errorf("%s: no epoch", cs.Name)
		}
		cs.Epoch = ""
		got[cs.Name] = cs
	})
	want := map[string]ChannelStats{
		"one":          {Name: "one", Subscribers: 1},
		"two":          {Name: "two", Offset: 3, Subscribers: 2},
		"history-only": {Name: "history-only", Offset: 1},
	}
	if !maps.Equal(got, want) {
		t.Fatalf("EachChannel saw %v, want %v", got, want)
	}
}
