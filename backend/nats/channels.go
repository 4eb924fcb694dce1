package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
)

// countEvery is how often the channel count is read from the stream again.
const countEvery = time.Second

// channelCount enforces Config.MaxChannels: the channels with a position in
// the stream (its subjects), all nodes together. The count is read from the
// stream at most every second; the channels this node creates in between
// are added to it, those other nodes create are not, so the stream can go
// past the limit by what the other nodes create in a second.
type channelCount struct {
	mu    sync.Mutex // held over the stream info request
	at    time.Time  // when n was read
	n     int64      // the stream's subjects then
	added int64      // the channels this node created since
}

type streamInfoResponse struct {
	State struct {
		NumSubjects int64 `json:"num_subjects"`
	} `json:"state"`
	Error *jetstream.APIError `json:"error"`
}

// admitChannel returns ErrTooManyChannels when the stream holds
// Config.MaxChannels channels, else counts one more.
func (b *Backend) admitChannel(ctx context.Context) error {
	if b.cfg.MaxChannels <= 0 {
		return nil
	}
	c := &b.channels
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= countEvery {
		n, err := b.countChannels(ctx)
		if err != nil {
			return err
		}
		c.at, c.n, c.added = time.Now(), n, 0
	}
	if c.n+c.added >= int64(b.cfg.MaxChannels) {
		return fmt.Errorf("nats: %w: the stream %s holds %d", backend.ErrTooManyChannels, b.stream, c.n+c.added)
	}
	c.added++
	return nil
}

// countChannels reads how many subjects the stream holds.
func (b *Backend) countChannels(ctx context.Context) (int64, error) {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	msg, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+b.stream, nil)
	if err != nil {
		return 0, fmt.Errorf("nats: stream info: %w", err)
	}
	var resp streamInfoResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("nats: stream info: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			return 0, nil // deleted: the next append creates it again, empty
		}
		return 0, fmt.Errorf("nats: stream info: %w", resp.Error)
	}
	return resp.State.NumSubjects, nil
}
