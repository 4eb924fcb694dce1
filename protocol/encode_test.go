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

// plainPublication is Publication without its methods: what json.Marshal
// encodes by the struct tags, the reference of appendPublication.
type plainPublication Publication

// checkPublication fails t unless appendPublication gives for p the bytes,
// or the error, json.Marshal gives.
func checkPublication(t *testing.T, p *Publication) {
	t.Helper()
	want, wantErr := json.Marshal((*plainPublication)(p))
	got, err := appendPublication([]byte("prefix"), p)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%+v: error %v, json.Marshal's %v", p, err, wantErr)
	}
	if err == nil && (!bytes.Equal(got[len("prefix"):], want) || string(got[:len("prefix")]) != "prefix") {
		t.Fatalf("%+v:\ngot  %s\nwant prefix%s", p, got, want)
	}
}

func TestAppendPublication(t *testing.T) {
	raws := []string{
		`{"a":1}`, `1`, `"x"`, `null`, `[]`, `{}`, `true`,
		` {"a" : [1, 2]} `, "{\n\t\"a\":1\r\n}", `"a b  c"`, `{"k":"v w","l":[" ",{"m":" "}]}`,
		`"<b>&amp;</b>"`, `{"<":">"}`, `"a&b"`, `"a>b"`, `"a<b"`, "\"\u2029\"", "\"\u2028\"", "[1,\t2]", "[1,\r2]", "[1,\n2]", "[1, 2]", "\"\u2028\u2029\"", "\"\xe2\x80\xa8 \xe2\x80\xa7 \xe2\x80\"",
		`"\u2028 \u003c"`, `"\"<\\"`, `"\\\" "`, `"\\"`, `"é ✓ 😀"`, "\"\xff\xfe\"",
		`{"a":"\"}"}`, `[1,"]"," "]`,
		// not JSON: json.Marshal fails
		``, `{`, `{"a":}`, `tru`, `1 2`, `"abc`, `"\"`, `{"a":1}}`, `<`, "\xe2\x80\xa8", `"\x"`, "\"\x01\"", `01`, `[1,]`,
	}
	strs := []string{"", "c", "chat:lobby", `a"b\c`, "<&>", "\x01\x1f", "é", "\u2028", "\xff", "a\u007fb"}
	for _, r := range raws {
		data := json.RawMessage(r)
		checkPublication(t, &Publication{Op: PushPub, Channel: "c", Epoch: "e", Offset: 1, Data: data})
		checkPublication(t, &Publication{Offset: 2, Data: json.RawMessage(`{}`), From: &ClientInfo{Client: "c1", Info: data}})
		checkPublication(t, &Publication{Data: data, From: &ClientInfo{User: "u", Info: data}})
	}
	for _, s := range strs {
		checkPublication(t, &Publication{Op: s, Channel: s, Epoch: s, Offset: 1 << 63, Data: json.RawMessage(`1`),
			From: &ClientInfo{Client: s, User: s}})
	}
	for _, p := range []*Publication{
		{},
		{Data: json.RawMessage{}}, // empty, not nil: not JSON
		{Data: json.RawMessage(`1`), From: &ClientInfo{}},
		{Data: json.RawMessage(`1`), From: &ClientInfo{Info: json.RawMessage{}}},
		{Data: json.RawMessage(`1`), From: &ClientInfo{Info: json.RawMessage(`{}`)}},
		{Data: json.RawMessage(`1`), From: &ClientInfo{Client: "c", Info: json.RawMessage(`{}`)}},
		{Data: json.RawMessage(`1`), From: &ClientInfo{User: "u"}},
	} {
		checkPublication(t, p)
	}
}

func TestPublicationBadData(t *testing.T) {
	for _, p := range []*Publication{
		{Channel: "c", Data: json.RawMessage(`{"a":`)},
		{Channel: "c", Data: json.RawMessage(`{"a":tru}`)}, // verbatim by its scan, yet not JSON
		{Channel: "c", Data: json.RawMessage(`1`), From: &ClientInfo{Info: json.RawMessage(`[1,]`)}},
	} {
		if b, err := p.Encode(); err == nil {
			t.Errorf("Encode(%s) = %s, want an error", p.Data, b)
		}
		if b, err := p.MarshalJSON(); err == nil || b != nil {
			t.Errorf("MarshalJSON(%s) = %s, %v, want an error", p.Data, b, err)
		}
	}
}

// FuzzAppendPublication: for any field values, appendPublication gives the
// bytes json.Marshal gives, or fails where it fails.
func FuzzAppendPublication(f *testing.F) {
	f.Add("pub", "chat:lobby", "e1", uint64(3), []byte(`{"text":"hi there"}`), true, "c1", "ann", []byte(`{"n":1}`))
	f.Add("", "", "", uint64(0), []byte(` [1, "<&>", "\u2028"] `), false, "", "", []byte(nil))
	f.Add("<", "\xff", "\u2028", uint64(1<<64-1), []byte(`{"a":tru}`), true, "", "\x00", []byte(`"\xe2\x80\xa9"`))
	f.Add("pub", "c", "e", uint64(7), []byte(``), true, "c", "", []byte(` `))
	f.Fuzz(func(t *testing.T, op, channel, epoch string, offset uint64, data []byte, from bool, client, user string, info []byte) {
		p := &Publication{Op: op, Channel: channel, Epoch: epoch, Offset: offset, Data: data}
		if from {
			p.From = &ClientInfo{Client: client, User: user, Info: info}
		}
		checkPublication(t, p)
	})
}

func TestEncodeReply(t *testing.T) {
	for _, c := range []struct {
		name string
		r    *Reply
	}{
		{"publish", &Reply{ID: 3, Result: &PublishResult{Epoch: "e1", Offset: 46}}},
		{"publish without id", &Reply{Result: &PublishResult{Epoch: "e1"}}},
		{"publish, epoch to escape", &Reply{ID: 1 << 63, Result: &PublishResult{Epoch: "a\"b\\<&>\x01é\u2028\xff", Offset: 1<<64 - 1}}},
		{"nil publish result", &Reply{ID: 1, Result: (*PublishResult)(nil)}},
		{"publish result by value", &Reply{ID: 1, Result: PublishResult{Epoch: "e"}}},
		{"subscribe", &Reply{ID: 2, Result: &SubscribeResult{Epoch: "e", Offset: 4, Recoverable: true}}},
		{"nil subscribe result", &Reply{ID: 2, Result: (*SubscribeResult)(nil)}},
		{"error", &Reply{ID: 4, Error: NewError(ErrPermission, "not <allowed>")}},
		{"error and result", &Reply{ID: 4, Result: &PublishResult{Epoch: "e"}, Error: NewError(ErrInternal, "x")}},
		{"other result", &Reply{ID: 5, Result: &HistoryResult{Epoch: "e", Publications: []*Publication{}}}},
		{"empty result", &Reply{ID: 6, Result: struct{}{}}},
		{"nothing", &Reply{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, err := json.Marshal(c.r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodeReply(c.r)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("got  %s, %v\nwant %s", got, err, want)
			}
		})
	}
}

// FuzzAppendPublishReply: for any id and position, the bytes are
// json.Marshal's.
func FuzzAppendPublishReply(f *testing.F) {
	f.Add(uint64(3), "e1", uint64(46))
	f.Add(uint64(0), "<\x00\xff\u2028", uint64(1<<64-1))
	f.Fuzz(func(t *testing.T, id uint64, epoch string, offset uint64) {
		pos := &PublishResult{Epoch: epoch, Offset: offset}
		want, err := json.Marshal(&Reply{ID: id, Result: pos})
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendPublishReply([]byte("prefix"), id, pos); string(got) != "prefix"+string(want) {
			t.Fatalf("got %s\nwant prefix%s", got, want)
		}
	})
}

func BenchmarkPublishReply(b *testing.B) {
	r := &Reply{ID: 12345, Result: &PublishResult{Epoch: "abcdefghij", Offset: 4242}}
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(r)
		}
	})
	b.Run("EncodeReply", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			EncodeReply(r)
		}
	})
}
