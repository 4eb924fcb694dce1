package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
	"github.com/tetherhq/tether/protocol"
)

var (
	_ backend.History = (*History)(nil)
	_ backend.Closer  = (*History)(nil)
	_ backend.Checker = (*History)(nil)
)

// maxAttempts bounds the appends one Append tries when other nodes keep
// appending to the channel first.
const maxAttempts = 1000

// History is the history on JetStream, from Backend.History. It implements
// backend.History with contiguous offsets per channel across nodes.
type History struct {
	b *Backend
}

// Append implements backend.History.
func (h *History) Append(ctx context.Context, pub *protocol.Publication) (protocol.Position, error) {
	b := h.b
	if err := b.usable(ctx); err != nil {
		return protocol.Position{}, err
	}
	subject := b.historySubject(pub.Channel)
	last, known := b.lastHead(pub.Channel)
	if !known {
		var err error
		if last, err = b.last(ctx, subject); err != nil {
			return protocol.Position{}, err
		}
	}
	// pub itself is encoded for each attempt (its encoding is what is
	// stored and what subscribers get); a refused attempt starts again from
	// the publication as given.
	given := *pub
	fail := func(err error) (protocol.Position, error) {
		*pub = given
		return protocol.Position{}, err
	}
	admitted := false
	for range maxAttempts {
		epoch, offset := last.epoch, last.offset+1
		if last.seq == 0 { // the subject is empty: a new epoch
			epoch, offset = newEpoch(), 1
			if !admitted {
				if err := b.admitChannel(ctx); err != nil {
					return fail(err)
				}
				admitted = true
			}
		}
		*pub = given
		pub.Epoch, pub.Offset = epoch, offset
		data, err := pub.Encode()
		if err != nil {
			return fail(err)
		}
		seq, err := h.store(ctx, subject, epoch, offset, data, last.seq)
		if isWrongLast(err) {
			if last, err = b.last(ctx, subject); err != nil {
				return fail(err)
			}
			continue
		}
		if err != nil {
			b.forgetHead(pub.Channel)
			return fail(err)
		}
		b.setHead(pub.Channel, head{seq: seq, prev: last.seq, epoch: epoch, offset: offset})
		return protocol.Position{Epoch: epoch, Offset: offset}, nil
	}
	*pub = given
	return protocol.Position{}, fmt.Errorf("nats: append to %s: %d attempts lost to other nodes", pub.Channel, maxAttempts)
}

// store appends one message to subject if its last sequence is still
// lastSeq, and returns the message's sequence. When no stream answers (it
// was deleted), it creates the stream again and tries once more: the
// subject is then empty, so an append expecting another last sequence is
// refused as any stale one is.
func (h *History) store(ctx context.Context, subject, epoch string, offset uint64, data []byte, lastSeq uint64) (uint64, error) {
	b := h.b
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	msg := &natsgo.Msg{Subject: subject, Data: data, Header: natsgo.Header{
		hdrEpoch:  []string{epoch},
		hdrOffset: []string{strconv.FormatUint(offset, 10)},
	}}
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(lastSeq))
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, natsgo.ErrNoResponders) {
		b.log.Warn("nats: the history stream is gone; creating it again", "stream", b.stream)
		if err = b.ensureStream(ctx); err == nil {
			ack, err = b.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(lastSeq))
		}
	}
	if err != nil {
		return 0, fmt.Errorf("nats: append: %w", err)
	}
	return ack.Sequence, nil
}

func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Read implements backend.History.
func (h *History) Read(ctx context.Context, channel string, q backend.Query) (backend.Result, error) {
	b := h.b
	if err := b.usable(ctx); err != nil {
		return backend.Result{}, err
	}
	subject := b.historySubject(channel)
	top, err := h.top(ctx, channel, subject)
	if err != nil {
		return backend.Result{}, err
	}
	res := backend.Result{Top: protocol.Position{Epoch: top.epoch, Offset: top.offset}}
	if q.Limit == 0 || q.Limit < backend.NoLimit || b.cfg.HistorySize <= 0 {
		return res, nil
	}
	var after uint64
	if q.Since != nil && (q.Since.Epoch == "" || q.Since.Epoch == top.epoch) {
		after = q.Since.Offset
	}
	if after >= top.offset {
		return res, nil
	}
	kept, err := h.window(ctx, subject, top)
	if err != nil {
		return backend.Result{}, err
	}
	for _, s := range kept {
		if s.offset <= after {
			continue
		}
		if q.Limit > 0 && len(res.Publications) == q.Limit {
			break
		}
		p, err := decode(s.data)
		if err != nil {
			return backend.Result{}, err
		}
		res.Publications = append(res.Publications, p)
	}
	if res.Publications == nil {
		res.Publications = []*protocol.Publication{}
	}
	return res, nil
}

// top returns channel's last message as the stream's leader has it. An empty
// subject gets an epoch marker first (offset 0 in a new epoch, no
// publication), so that its first publication takes the epoch Read tells.
func (h *History) top(ctx context.Context, channel, subject string) (head, error) {
	b := h.b
	admitted := false
	for range maxAttempts {
		top, err := b.last(ctx, subject)
		if err != nil || top.seq != 0 {
			if err == nil {
				b.setHead(channel, top)
			}
			return top, err
		}
		if !admitted {
			if err := b.admitChannel(ctx); err != nil {
				return head{}, err
			}
			admitted = true
		}
		epoch := newEpoch()
		seq, err := h.store(ctx, subject, epoch, 0, nil, 0)
		if isWrongLast(err) {
			continue // another node wrote first: read what it wrote
		}
		if err != nil {
			return head{}, err
		}
		top = head{seq: seq, epoch: epoch}
		b.setHead(channel, top)
		return top, nil
	}
	return head{}, fmt.Errorf("nats: read %s: the subject keeps changing", channel)
}

// window returns the publications of top's epoch kept on subject up to top,
// oldest first and without holes (what comes before a hole is left out).
func (h *History) window(ctx context.Context, subject string, top head) ([]stored, error) {
	msgs, err := h.b.scan(ctx, subject, 1, top.seq, h.b.cfg.HistorySize+1)
	if err != nil {
		return nil, err
	}
	if n := len(msgs); n == 0 || msgs[n-1].seq != top.seq {
		// A replica behind the leader answered: walk from the leader.
		if msgs, err = h.b.walk(ctx, subject, 1, top.seq); err != nil {
			return nil, err
		}
	}
	out := run(msgs, top)
	if n := len(out); n > h.b.cfg.HistorySize { // a marker took no room
		out = out[n-h.b.cfg.HistorySize:]
	}
	return out, nil
}

// run keeps the publications of msgs in top's epoch that lead to top without
// a hole in their offsets.
func run(msgs []stored, top head) []stored {
	var out []stored
	for _, s := range msgs {
		if s.epoch != top.epoch || s.marker() || s.seq > top.seq {
			continue
		}
		if n := len(out); n > 0 && out[n-1].offset+1 != s.offset {
			out = out[:0] // a hole: only what follows it leads to top
		}
		out = append(out, s)
	}
	if n := len(out); n > 0 && out[n-1].offset != top.offset {
		return nil
	}
	return out
}

// Check implements backend.Checker.
func (h *History) Check(ctx context.Context) error { return h.b.Check(ctx) }

// Close implements backend.Closer: it closes the whole Backend.
func (h *History) Close(ctx context.Context) error { return h.b.Close(ctx) }
