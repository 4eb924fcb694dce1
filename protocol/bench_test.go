package protocol

import (
	"encoding/json"
	"testing"
)

var decodeCases = []struct {
	name string
	data string
}{
	{"ping", `{"id":7,"op":"ping"}`},
	{"subscribe", `{"id":2,"op":"subscribe","channel":"chat:lobby"}`},
	{"subscribe recover", `{"id":2,"op":"subscribe","channel":"chat:lobby","recover":{"epoch":"e1","offset":41}}`},
	{"publish", `{"id":3,"op":"publish","channel":"chat:lobby","data":{"text":"hi there, how are you doing today?","n":[1,2,3]}}`},
}

func TestDecodeBenchCases(t *testing.T) {
	for _, tt := range decodeCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DecodeCommand([]byte(tt.data))
			if err != nil || c.Op == "" || c.ID == 0 {
				t.Fatalf("DecodeCommand(%s) = %+v, %v", tt.data, c, err)
			}
		})
	}
}

func BenchmarkDecodeCommand(b *testing.B) {
	for _, tt := range decodeCases {
		b.Run(tt.name, func(b *testing.B) {
			data := []byte(tt.data)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DecodeCommand(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodePublication is the once-per-publication encode.
func BenchmarkEncodePublication(b *testing.B) {
	data := json.RawMessage(`{"seq":12345,"ts":1700000000000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxx"}`)
	b.ReportAllocs()
	for b.Loop() {
		p := &Publication{Channel: "chat:lobby", Epoch: "abcdefghij", Offset: 42, Data: data,
			From: &ClientInfo{Client: "c9", User: "ann"}}
		if _, err := p.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
