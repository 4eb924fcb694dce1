package serverapi

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestPublishDecodeQuick(t *testing.T) {
	tests := []struct {
		body  string
		quick bool // taken by decodeQuick, else left to encoding/json
	}{
		{`{"channel":"a","data":{"v":1}}`, true},
		{" \n{ \"channel\" : \"chat:lobby\" ,\t\"data\" : [1, 2] }\r\n", true},
		{`{"channel":"a","data":null}`, true},
		{`{"channel":"a","data":"x}"}`, true},
		{`{"data":1,"channel":"a"}`, false},               // another order
		{`{"channel":"a\"b","data":1}`, false},            // an escape
		{`{"channel":"é","data":1}`, false},               // not ASCII
		{`{"channel":"a","data":1,"x":2}`, false},         // another key
		{`{"channel":"a","data":1}}`, false},              // not one value
		{`{"channel":"a","data":}`, false},                // no value
		{`{"channel":"a","data":1,"channel":"b"}`, false}, // a repeated key
		{`{"channel":"a"}`, false},                        // no data
		{`{"channel":"a","data":{"v":1}`, false},          // unbalanced
	}
	for _, tt := range tests {
		var req publishRequest
		if got := req.decodeQuick([]byte(tt.body)); got != tt.quick {
			t.Errorf("decodeQuick(%q) = %v, want %v", tt.body, got, tt.quick)
		}
		checkAgainstJSON(t, []byte(tt.body))
	}
}

// checkAgainstJSON fails when decodeQuick takes body and encoding/json
// reads it otherwise.
func checkAgainstJSON(t *testing.T, body []byte) {
	var quick publishRequest
	if !quick.decodeQuick(body) {
		return
	}
	var ref publishRequest
	if err := json.Unmarshal(body, &ref); err != nil {
		t.Fatalf("decodeQuick took %q, which encoding/json refuses: %v", body, err)
	}
	if quick.Channel != ref.Channel || !bytes.Equal(quick.Data, ref.Data) {
		t.Fatalf("%q: decodeQuick read %q %s, encoding/json %q %s", body, quick.Channel, quick.Data, ref.Channel, ref.Data)
	}
}

func FuzzPublishDecodeQuick(f *testing.F) {
	for _, s := range []string{`{"channel":"a","data":{"v":1}}`, `{"channel":"a","data":[1,"]}"]}`, ` {"channel" :"x", "data": "y" } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkAgainstJSON(t, body) })
}
