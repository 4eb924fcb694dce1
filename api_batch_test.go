package tether_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	tetherv1 "github.com/tetherhq/tether/proto/tether/v1"
	"github.com/tetherhq/tether/protocol"
	"github.com/tetherhq/tether/tethertest"
)

// TestServerAPIBatchAndStream publishes through POST /api/batch and the gRPC
// PublishStream to subscribers on two transports: each publication gets its
// own result, in order, and reaches its channel's subscribers in order.
func TestServerAPIBatchAndStream(t *testing.T) {
	e := startEnv(t, tethertest.Config(), false)
	a, b := e.dialTCP(), e.dialGRPC()
	a.subscribe("a", nil)
	b.subscribe("b", nil)
	status, body := e.postAPI("/api/batch", "", `{"publications":[{"channel":"a","data":{"n":1}},{"channel":"b","data":{"n":1}},{"channel":"bad channel","data":1},{"channel":"a","data":{"n":2}}]}`)
	var res struct {
		Results []struct {
			Channel string
			Offset  uint64
			Error   *protocol.Error
		}
	}
	if status != http.StatusOK || json.Unmarshal(body, &res) != nil || len(res.Results) != 4 ||
		res.Results[0].Offset != 1 || res.Results[1].Offset != 1 || res.Results[2].Error == nil || res.Results[3].Offset != 2 {
		t.Fatalf("POST /api/batch: %d %s", status, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := tetherv1.NewServerAPIClient(e.grpcConn()).PublishStream(metadata.NewOutgoingContext(ctx, nil))
	if err != nil {
		t.Fatal(err)
	}
	for i, ch := range []string{"b", "a"} {
		if err := stream.Send(&tetherv1.PublishStreamRequest{Id: uint64(i), Channel: ch, Data: fmt.Sprintf(`{"n":%d}`, 3-i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{2, 3} { // b's second, a's third
		r, err := stream.Recv()
		if err != nil || r.GetId() != uint64(i) || r.GetPosition().GetOffset() != want {
			t.Fatalf("answer %d: %v %v, want offset %d", i, r, err, want)
		}
	}

	for _, c := range []struct {
		conn *pconn
		want []string
	}{{a, []string{`{"n":1}`, `{"n":2}`, `{"n":2}`}}, {b, []string{`{"n":1}`, `{"n":3}`}}} {
		for i, data := range c.want {
			if m := c.conn.untilPub(); m.Offset != uint64(i+1) || string(m.Data) != data {
				t.Fatalf("%s: got %+v, want offset %d with %s", c.conn.name, m, i+1, data)
			}
		}
	}
}
