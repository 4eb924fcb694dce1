package protocol

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestAppendPresenceResult: the appending encoder writes what encoding/json
// writes, escapes included.
func TestAppendPresenceResult(t *testing.T) {
	for _, ms := range [][]Member{
		{},
		{{Client: "c1", ConnectedAt: 1700000000000}},
		{{Client: "c1", User: "ann", Info: json.RawMessage(`{"name":"Ann"}`), ConnectedAt: 1}, {Client: "c2", User: "quo\"te\\ <b>&é\x01\u2028"}},
	} {
		got := AppendPresenceResult(nil, ms)
		if len(ms) == 0 {
			ms = []Member{}
		}
		want, _ := json.Marshal(PresenceResult{Members: ms})
		if string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

// BenchmarkPresenceResult15k compares the appending encoder with
// encoding/json on 15,000 members.
func BenchmarkPresenceResult15k(b *testing.B) {
	ms := make([]Member, 15_000)
	for i := range ms {
		ms[i] = Member{Client: fmt.Sprint("c", i), User: fmt.Sprint("user", i), Info: json.RawMessage(`{"name":"someone"}`), ConnectedAt: 1764620000000}
	}
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			_ = AppendPresenceResult(make([]byte, 0, 1<<20), ms)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(PresenceResult{Members: ms})
		}
	})
}
