package protocol

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeCommand(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantID  uint64
		wantOp  string
		errCode string
	}{
		{"subscribe", `{"id":2,"op":"subscribe","channel":"chat:lobby","recover":{"epoch":"e1","offset":41}}`, 2, OpSubscribe, ""},
		{"publish", `{"id":3,"op":"publish","channel":"c","data":{"text":"hi"}}`, 3, OpPublish, ""},
		{"no id", `{"op":"ping"}`, 0, OpPing, ""},
		{"unknown fields ignored", `{"id":1,"op":"ping","extra":[1,2]}`, 1, OpPing, ""},
		{"missing op", `{"id":4}`, 4, "", ErrBadRequest},
		{"syntax error", `{"id":5,"op":`, 0, "", ErrBadRequest},
		{"wrong type keeps id", `{"id":6,"op":"subscribe","channel":7}`, 6, OpSubscribe, ErrBadRequest},
		{"negative id", `{"id":-1,"op":"ping"}`, 0, OpPing, ErrBadRequest},
		{"invalid UTF-8", "{\"id\":7,\"op\":\"\xff\"}", 0, "", ErrBadRequest},
		{"array", `[]`, 0, "", ErrBadRequest},
		{"null", `null`, 0, "", ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := DecodeCommand([]byte(tt.in))
			if cmd == nil {
				t.Fatal("nil command")
			}
			if tt.errCode == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
			} else {
				perr, ok := err.(*Error)
				if !ok || perr.Code != tt.errCode {
					t.Fatalf("error %v, want code %s", err, tt.errCode)
				}
			}
			if cmd.ID != tt.wantID || cmd.Op != tt.wantOp {
				t.Fatalf("id %d op %q, want %d %q", cmd.ID, cmd.Op, tt.wantID, tt.wantOp)
			}
		})
	}
}

func TestPublicationEncodeOnce(t *testing.T) {
	p := &Publication{Channel: "c", Epoch: "e", Offset: 3, Data: json.RawMessage(`{"a":1}`), From: &ClientInfo{Client: "c1"}}
	b1, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"op":"pub","channel":"c","epoch":"e","offset":3,"data":{"a":1},"from":{"client":"c1"}}`
	if string(b1) != want {
		t.Fatalf("encoded %s, want %s", b1, want)
	}
	b2, _ := p.Encode()
	if &b1[0] != &b2[0] {
		t.Fatal("second Encode built new bytes")
	}
	inReply, _ := json.Marshal(&Reply{ID: 1, Result: &HistoryResult{Epoch: "e", Offset: 3, Publications: []*Publication{p}}})
	if !strings.Contains(string(inReply), want) {
		t.Fatalf("reply %s does not embed the encoded publication", inReply)
	}
	var back Publication
	if err := json.Unmarshal(b1, &back); err != nil || back.Offset != 3 || string(back.Data) != `{"a":1}` {
		t.Fatalf("decode: %v %+v", err, back)
	}
}

func TestValidateChannel(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"chat:lobby", true},
		{"ünïcode/ok", true},
		{"", false},
		{"has space", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"bad\xffutf8", false},
		{strings.Repeat("a", 16), true},
		{strings.Repeat("a", 17), false},
	}
	for _, tt := range tests {
		if err := ValidateChannel(tt.name, 16); (err == nil) != tt.ok {
			t.Errorf("ValidateChannel(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// FuzzDecodeCommand: any input decodes without panicking, to a command or a
// bad_request error; a command that decodes re-encodes and decodes the same.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"connect","token":"t"}`,
		`{"id":2,"op":"subscribe","channel":"chat:lobby","recover":{"epoch":"e1","offset":41}}`,
		`{"id":3,"op":"publish","channel":"chat:lobby","data":{"text":"hi"}}`,
		`{"id":4,"op":"history","channel":"c","since":{"offset":3},"limit":10}`,
		`{"op":"ping"}`, `{"id":"x"}`, `{`, `[]`, "\xff", `{"data":}`, `{"id":18446744073709551615,"op":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := DecodeCommand(in)
		if cmd == nil {
			t.Fatal("nil command")
		}
		if err != nil {
			if perr, ok := err.(*Error); !ok || perr.Code != ErrBadRequest || perr.Message == "" {
				t.Fatalf("error %#v is not a bad_request with a message", err)
			}
			return
		}
		b, err := json.Marshal(cmd)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", cmd, err)
		}
		again, err := DecodeCommand(b)
		if err != nil || again.ID != cmd.ID || again.Op != cmd.Op || again.Channel != cmd.Channel {
			t.Fatalf("round trip of %s: %+v, %v", b, again, err)
		}
	})
}
