package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

func TestAPIHistory(t *testing.T) {
	cfg := tethertest.Config()
	cfg.APIKey = "s3cret"
	cfg.HistorySize = 5
	n := tethertest.NewNode(t, cfg)
	var epoch string
	for i := 1; i <= 8; i++ {
		pos, err := n.Publish(context.Background(), "news", json.RawMessage(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		epoch = pos.Epoch
	}
	tests := []struct {
		name, key, body string
		status          int
		code            string
		offsets         []uint64
	}{
		{"all kept", "s3cret", `{"channel":"news"}`, 200, "", []uint64{4, 5, 6, 7, 8}},
		{"since", "s3cret", `{"channel":"news","since":{"epoch":"` + epoch + `","offset":6}}`, 200, "", []uint64{7, 8}},
		{"since with limit", "s3cret", `{"channel":"news","since":{"epoch":"` + epoch + `","offset":4},"limit":2}`, 200, "", []uint64{5, 6}},
		{"other epoch", "s3cret", `{"channel":"news","since":{"epoch":"old","offset":7},"limit":1}`, 200, "", []uint64{4}},
		{"up to date", "s3cret", `{"channel":"news","since":{"epoch":"` + epoch + `","offset":8}}`, 200, "", []uint64{}},
		{"unknown channel", "s3cret", `{"channel":"nothing"}`, 200, "", []uint64{}},
		{"missing key", "", `{"channel":"news"}`, 401, protocol.ErrUnauthorized, nil},
		{"wrong key", "nope", `{"channel":"news"}`, 401, protocol.ErrUnauthorized, nil},
		{"malformed", "s3cret", `{"channel":`, 400, protocol.ErrBadRequest, nil},
		{"bad channel", "s3cret", `{"channel":"a b"}`, 400, protocol.ErrInvalidChannel, nil},
		{"negative limit", "s3cret", `{"channel":"news","limit":-1}`, 400, protocol.ErrBadRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := postJSON(t, tethertest.HTTPURL(n, "/api/history"), tt.key, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.code != "" {
				var e struct{ Error protocol.Error }
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tt.code {
					t.Fatalf("body %s: want error code %s", body, tt.code)
				}
				return
			}
			var res protocol.HistoryResult
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if res.Publications == nil {
				t.Fatalf("body %s: publications must be a list, even empty", body)
			}
			got := []uint64{}
			for _, p := range res.Publications {
				if string(p.Data) != fmt.Sprint(p.Offset) || p.Epoch != epoch {
					t.Fatalf("publication %+v: want data %d in epoch %s", p, p.Offset, epoch)
				}
				got = append(got, p.Offset)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.offsets) {
				t.Fatalf("offsets %v, want %v", got, tt.offsets)
			}
			if tt.name != "unknown channel" && (res.Epoch != epoch || res.Offset != 8) {
				t.Fatalf("position %s/%d, want %s/8", res.Epoch, res.Offset, epoch)
			}
		})
	}
}

// TestRecoveredOnTheWire: "recovered" is in a subscribe result exactly when the
// subscribe asked to recover, false as well as true.
func TestRecoveredOnTheWire(t *testing.T) {
	n := tethertest.NewNode(t, tethertest.Config())
	c := dial(t, n)
	pos, err := n.Publish(context.Background(), "w", json.RawMessage(`1`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		channel string
		recover *protocol.Position
		want    string // in the result, or "" for no "recovered" at all
	}{
		{"w", nil, ""},
		{"w2", &protocol.Position{Epoch: "gone", Offset: 3}, `"recovered":false`},
		{"w", &protocol.Position{Epoch: pos.Epoch, Offset: 0}, `"recovered":true`},
	}
	for _, tt := range tests {
		m := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: tt.channel, Recover: tt.recover})
		if tt.channel == "w" && tt.recover == nil {
			c.call(protocol.Command{Op: protocol.OpUnsubscribe, Channel: "w"})
		}
		got := string(m.Result)
		if tt.want == "" && strings.Contains(got, "recovered") || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("subscribe %s recover %v: result %s, want %q", tt.channel, tt.recover, got, tt.want)
		}
	}
}
