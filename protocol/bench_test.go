package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// pubData returns a JSON object of about n bytes, as a backend publishes:
// short keys, numbers, and text with spaces.
func pubData(n int) json.RawMessage {
	b := []byte(`{"seq":12345,"ts":1700000000000000000,"text":"`)
	for len(b) < n-2 {
		b = append(b, "lorem ipsum "...)
	}
	return append(b[:n-2], `"}`...)
}

// BenchmarkEncodePublication is the once-per-publication encode, against
// json.Marshal, which Encode used before, in the same run.
func BenchmarkEncodePublication(b *testing.B) {
	for _, size := range []int{64, 1536} {
		data := pubData(size)
		newPub := func() *Publication {
			return &Publication{Channel: "chat:lobby", Epoch: "abcdefghij", Offset: 42, Data: data,
				From: &ClientInfo{Client: "c9", User: "ann"}}
		}
		b.Run(fmt.Sprintf("%dB/json.Marshal", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				p := newPub()
				p.Op = PushPub
				if _, err := json.Marshal((*plainPublication)(p)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%dB/Encode", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := newPub().Encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawChecks is what appendRaw's checks of data cost apart.
func BenchmarkRawChecks(b *testing.B) {
	for _, size := range []int{64, 1536} {
		data := pubData(size)
		b.Run(fmt.Sprintf("%dB/verbatim", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if !verbatim(data) {
					b.Fatal("not verbatim")
				}
			}
		})
		b.Run(fmt.Sprintf("%dB/json.Valid", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if !json.Valid(data) {
					b.Fatal("not valid")
				}
			}
		})
		b.Run(fmt.Sprintf("%dB/json.Compact", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := json.Compact(&buf, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
