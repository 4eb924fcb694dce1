package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendSubscribeReply(t *testing.T) {
	pub := func(off uint64, data string, from *ClientInfo) *Publication {
		p := &Publication{Channel: "news", Epoch: "e1", Offset: off, Data: json.RawMessage(data), From: from}
		if _, err := p.Encode(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unencoded := &Publication{Channel: "c", Offset: 9, Data: json.RawMessage(`{"a" : [1, 2]}`)}
	for _, c := range []struct {
		name string
		id   uint64
		r    SubscribeResult
	}{
		{"plain", 1, SubscribeResult{Epoch: "abc", Offset: 3, Recoverable: true}},
		{"no id", 0, SubscribeResult{Epoch: "abc"}},
		{"recovering, not recovered", 7, SubscribeResult{Epoch: "abc", Offset: 3, Recovering: true}},
		{"recovered", 1 << 60, SubscribeResult{Epoch: "e1", Offset: 2, Recoverable: true, Recovered: true, Recovering: true,
			Publications: []*Publication{pub(1, `{"x":"<&>"}`, nil), pub(2, `"\u2028 é"`, &ClientInfo{Client: "c1", User: "u", Info: json.RawMessage(`{"n":1}`)})}}},
		{"recovered without recovering", 1, SubscribeResult{Epoch: "e", Recovered: true}},
		{"empty publications", 1, SubscribeResult{Epoch: "e", Publications: []*Publication{}, Recovering: true}},
		{"unencoded and nil publications", 1, SubscribeResult{Epoch: "e", Publications: []*Publication{unencoded, nil}}},
		{"epoch to escape", 1, SubscribeResult{Epoch: "a\"b\\c<d>&\x01é\u2028"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(&Reply{ID: c.id, Result: &c.r})
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendSubscribeReply([]byte("prefix"), c.id, &c.r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix" {
				t.Errorf("got  %s\nwant prefix%s", got, want)
			}
		})
	}
}

func TestAppendSubscribeReplyBadPublication(t *testing.T) {
	r := &SubscribeResult{Epoch: "e", Publications: []*Publication{{Data: json.RawMessage(`{`)}}}
	if _, err := AppendSubscribeReply(nil, 1, r); err == nil {
		t.Error("a publication with invalid data encoded")
	}
}

// FuzzAppendSubscribeReply: for any epoch and publication data, the bytes
// are json.Marshal's.
func FuzzAppendSubscribeReply(f *testing.F) {
	f.Add("e1", []byte(`{"a":1}`), uint64(3), true)
	f.Add("<\x00\xff", []byte(`"x"`), uint64(0), false)
	f.Fuzz(func(t *testing.T, epoch string, data []byte, id uint64, recovering bool) {
		p := &Publication{Channel: "c", Epoch: epoch, Offset: 1, Data: data}
		if _, err := p.Encode(); err != nil {
			return // invalid data is refused at publish
		}
		r := &SubscribeResult{Epoch: epoch, Offset: id, Recovering: recovering, Publications: []*Publication{p}}
		want, err := json.Marshal(&Reply{ID: id, Result: r})
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendSubscribeReply(nil, id, r)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %s, %v\nwant %s", got, err, want)
		}
	})
}

func BenchmarkSubscribeReply(b *testing.B) {
	r := &SubscribeResult{Epoch: "e1", Offset: 100, Recoverable: true, Recovered: true, Recovering: true}
	for i := range 20 {
		p := &Publication{Channel: "news", Epoch: "e1", Offset: uint64(i), Data: json.RawMessage(`{"text":"hello there, a message of some length","n":12345}`)}
		p.Encode()
		r.Publications = append(r.Publications, p)
	}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(&Reply{ID: 1, Result: r})
		}
	})
	b.Run("AppendSubscribeReply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			AppendSubscribeReply(nil, 1, r)
		}
	})
}
