package hub

import (
	"maps"
	"testing"

	"github.com/tetherhq/tether/backend/memory"
)

func TestEachChannel(t *testing.T) {
	h := newHub(t, memory.HistoryConfig{Size: 10}, Config{})
	a, b := newRecorder(), newRecorder()
	for _, sub := range []struct {
		channel string
		s       Subscriber
	}{{"two", a}, {"two", b}, {"one", a}} {
		subscribe(t, h, sub.channel, sub.s, nil)
	}
	for i, ch := range []string{"two", "two", "two", "nobody-here"} {
		if _, err := h.Publish(ctx, ch, data(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, b, 3)
	got := map[string]ChannelStats{}
	h.EachChannel(func(cs ChannelStats) {
		if cs.Offset > 0 && cs.Epoch == "" {
			t.Errorf("%s: no epoch", cs.Name)
		}
		cs.Epoch = ""
		got[cs.Name] = cs
	})
	want := map[string]ChannelStats{
		"one": {Name: "one", Subscribers: 1},
		"two": {Name: "two", Offset: 3, Subscribers: 2},
	}
	if !maps.Equal(got, want) {
		t.Fatalf("EachChannel saw %v, want %v", got, want)
	}
}
