package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

var flatSeeds = []string{
	`{"id":1,"op":"connect","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2ln"}`,
	` { "id" : 7 , "op" : "subscribe" , "channel" : "chat:lobby" } `,
	`{"op":"history","channel":"c","limit":10}`,
	`{"op":"ping"}`, `{}`, `{"op":"é\u2028"}`,
	`{"op":"a","op":"b"}`, `{"OP":"x"}`, `{"op":"a\"b"}`, `{"id":01,"op":"x"}`, `{"id":1.5,"op":"x"}`,
	`{"id":18446744073709551616,"op":"x"}`, `{"id":-1,"op":"x"}`, `{"limit":-1,"op":"x"}`, `{"op":"x",}`,
	`{"op":"x"}x`, `{"op":"x"`, `{"op":null}`, `{"op":"x","data":{}}`, "{\"op\":\"a\tb\"}",
}

// TestDecodeFlat: what the flat decoder takes, it decodes as json.Unmarshal
// does; what it leaves, encoding/json decodes.
func TestDecodeFlat(t *testing.T) {
	for _, s := range flatSeeds {
		checkFlat(t, []byte(s))
	}
	for _, c := range []struct {
		in   string
		flat bool
	}{
		{`{"id":1,"op":"connect","token":"t"}`, true},
		{` { "id" : 7 , "op" : "subscribe" , "channel" : "c" } `, true},
		{`{"OP":"x"}`, false},
		{`{"op":"a\"b"}`, false},
		{`{"op":"x","data":{}}`, false},
	} {
		var cmd Command
		if got := decodeFlat([]byte(c.in), &cmd); got != c.flat {
			t.Errorf("decodeFlat(%s) = %v, want %v", c.in, got, c.flat)
		}
	}
}

func checkFlat(t *testing.T, in []byte) {
	t.Helper()
	if !utf8.Valid(in) {
		return
	}
	var flat Command
	if !decodeFlat(in, &flat) {
		return
	}
	var want Command
	if err := json.Unmarshal(in, &want); err != nil {
		t.Fatalf("decodeFlat took %q, json.Unmarshal: %v", in, err)
	}
	if !reflect.DeepEqual(flat, want) {
		t.Fatalf("%q: decodeFlat %+v, json.Unmarshal %+v", in, flat, want)
	}
}

// FuzzDecodeFlat: the flat decoder never disagrees with encoding/json.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkFlat)
}

func BenchmarkDecodeConnect(b *testing.B) {
	in := []byte(`{"id":2,"op":"connect","token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3NjQ2MzU4MDAsInN1YiI6ImJlbmNoLTEyMyJ9.x0Z2a7mF6b2v4m1Z6m6p5oZrjvH9gkFq0Jw3cR0kq2M"}`)
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c Command
			json.Unmarshal(in, &c)
		}
	})
	b.Run("DecodeCommand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			DecodeCommand(in)
		}
	})
}
