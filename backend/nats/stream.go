package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/protocol"
)

// Headers of the messages in the history stream.
const (
	hdrEpoch  = "Tether-Epoch"
	hdrOffset = "Tether-Offset"
	// On the broker's messages: the publication's stream sequence, and the
	// sequence of the message before it on the channel's history subject.
	hdrSeq  = "Tether-Seq"
	hdrPrev = "Tether-Prev"
)

// stored is one message of the history stream.
type stored struct {
	seq    uint64
	epoch  string
	offset uint64    // a marker's is its channel's offset when it was written
	data   []byte    // the encoded publication; empty: a marker
	at     time.Time // when the stream stored it; set by leader gets only
}

// marker says s holds no publication, only its channel's position: offset 0
// in a new epoch (History.Read of an empty subject), or the offset of the
// channel's last publication (written by a node that keeps a quiet channel's
// position, Backend.keep).
func (s stored) marker() bool { return len(s.data) == 0 }

// parse reads a stored message's position from its headers.
func parse(seq uint64, hdr natsgo.Header, data []byte) (stored, error) {
	s := stored{seq: seq, epoch: hdr.Get(hdrEpoch), data: data}
	off, err := strconv.ParseUint(hdr.Get(hdrOffset), 10, 64)
	if err != nil || s.epoch == "" {
		return stored{}, fmt.Errorf("nats: stream message %d has no tether position", seq)
	}
	s.offset = off
	return s, nil
}

// publication decodes a stored publication, encoded once more for this node.
func decode(data []byte) (*protocol.Publication, error) {
	p := new(protocol.Publication)
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("nats: decode publication: %w", err)
	}
	if _, err := p.Encode(); err != nil {
		return nil, err
	}
	return p, nil
}

// msgGet is the JetStream API's message get request.
type msgGet struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
	UpToSeq uint64 `json:"up_to_seq,omitempty"`
	// MultiLast asks a direct get for the last message of every subject
	// matching these filters.
	MultiLast []string `json:"multi_last,omitempty"`
}

type msgGetResponse struct {
	Message *struct {
		Time time.Time `json:"time"`
		Seq  uint64    `json:"seq"`
		Hdrs []byte    `json:"hdrs"`
		Data []byte    `json:"data"`
	} `json:"message"`
	Error *jetstream.APIError `json:"error"`
}

// errNotFound says the stream holds no message that matches.
var errNotFound = errors.New("nats: no such message")

// get asks the stream's leader for one message (STREAM.MSG.GET): reads there
// see every acknowledged write, unlike direct gets a replica may answer.
func (b *Backend) get(ctx context.Context, req msgGet) (stored, error) {
	body, _ := json.Marshal(req)
	ctx, cancel := b.bound(ctx)
	defer cancel()
	msg, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+b.stream, body)
	if err != nil {
		return stored{}, fmt.Errorf("nats: stream get: %w", err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return stored{}, fmt.Errorf("nats: stream get: %w", err)
	}
	if resp.Error != nil {
		// No stream: it was deleted; the next append creates it again.
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound || resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			return stored{}, errNotFound
		}
		return stored{}, fmt.Errorf("nats: stream get: %w", resp.Error)
	}
	if resp.Message == nil {
		return stored{}, errors.New("nats: stream get: empty response")
	}
	var hdr natsgo.Header
	if len(resp.Message.Hdrs) > 0 {
		if hdr, err = natsgo.DecodeHeadersMsg(resp.Message.Hdrs); err != nil {
			return stored{}, fmt.Errorf("nats: stream get: %w", err)
		}
	}
	s, err := parse(resp.Message.Seq, hdr, resp.Message.Data)
	s.at = resp.Message.Time
	return s, err
}

// last returns the last message of subject as the stream's leader has it,
// or a zero head when the subject is empty.
func (b *Backend) last(ctx context.Context, subject string) (head, error) {
	s, err := b.get(ctx, msgGet{LastFor: subject})
	if errors.Is(err, errNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	return head{seq: s.seq, epoch: s.epoch, offset: s.offset, at: s.at}, nil
}

// scan returns subject's messages with sequences from..upTo (upTo zero: to
// the end), oldest first, at most n, in one batched direct get. A replica may
// answer it: callers check what they get against what the leader said.
func (b *Backend) scan(ctx context.Context, subject string, from, upTo uint64, n int) ([]stored, error) {
	var out []stored
	err := b.direct(ctx, b.stream, msgGet{Seq: max(from, 1), NextFor: subject, Batch: n, UpToSeq: upTo}, func(msg *natsgo.Msg) error {
		seq, err := strconv.ParseUint(msg.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return fmt.Errorf("nats: stream scan: message without a sequence")
		}
		s, err := parse(seq, msg.Header, msg.Data)
		if err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nats: stream scan: %w", err)
	}
	return out, nil
}

// errTooMany says a batched direct get matched more messages than the
// server returns at once.
var errTooMany = errors.New("too many results")

// direct sends a batched direct get to stream and calls fn with each message
// of the answer, in order. No message matching is not an error.
func (b *Backend) direct(ctx context.Context, stream string, req msgGet, fn func(*natsgo.Msg) error) error {
	ctx, cancel := b.bound(ctx)
	defer cancel()
	inbox := b.nc.NewRespInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(req)
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return err
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return err
		}
		if len(msg.Data) == 0 {
			switch msg.Header.Get("Status") {
			case "204", "404": // end of batch; nothing matched
				return nil
			case "413":
				return errTooMany
			case "":
			default:
				return fmt.Errorf("status %s %s", msg.Header.Get("Status"), msg.Header.Get("Description"))
			}
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// walk reads subject's messages with sequences from..upTo from the leader,
// one at a time.
func (b *Backend) walk(ctx context.Context, subject string, from, upTo uint64) ([]stored, error) {
	var out []stored
	for seq := max(from, 1); seq <= upTo; {
		s, err := b.get(ctx, msgGet{Seq: seq, NextFor: subject})
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if s.seq > upTo {
			break
		}
		out = append(out, s)
		seq = s.seq + 1
	}
	return out, nil
}
