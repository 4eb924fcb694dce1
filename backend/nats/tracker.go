package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
)

var _ backend.PresenceTracker = (*Presence)(nil)

// The tracker's keys, beside the members' <channel>.<client> (two tokens):
//
//   - <channel>.<user>.u (three tokens): the user's clients in the channel, a
//     JSON array of client ids. Join and Leave change it by compare-and-set
//     on its revision, so for one user in one channel they are one sequence
//     across nodes: a Join that finds no live client of the user is its
//     first, a Leave that leaves none is its last.
//   - <channel> (one token): the channel's counts, changed by
//     compare-and-set with each Join and Leave that changed them, and
//     counted again from the members when older than the TTL.
//
// A member listing (<channel>.*) matches neither.

func (p *Presence) userKey(channel, user string) string {
	return kvToken(channel) + "." + kvToken(user) + ".u"
}

func (p *Presence) countKey(channel string) string { return kvToken(channel) }

// counts is the value of a channel's count key.
type counts struct {
	Clients int `json:"clients"`
	Users   int `json:"users"`
	// Counted is when the counts were last taken from the members (unix
	// nanoseconds).
	Counted int64 `json:"counted"`
}

// maxCAS bounds the compare-and-set attempts of one change: each failed one
// means another change of the same key succeeded.
const maxCAS = 1000

// errContended says a key changed under every one of maxCAS attempts.
var errContended = errors.New("nats: presence: key contended")

// conflict says a conditional write lost to another write of its key.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Join implements backend.PresenceTracker: it creates the member's key
// (Changed when it was not there, else it puts it again), adds the client to
// its user's key (UserChanged when no other client of the user is alive, as
// their member keys say), then changes the channel's counts.
func (p *Presence) Join(ctx context.Context, channel string, m backend.Member) (backend.PresenceChange, error) {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return backend.PresenceChange{}, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return backend.PresenceChange{}, fmt.Errorf("nats: presence: %w", err)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	key := p.key(channel, m.Client)
	changed := true
	if _, err = b.kv.Create(ctx, key, data); errors.Is(err, jetstream.ErrKeyExists) {
		changed = false
		_, err = b.kv.Put(ctx, key, data)
	}
	if err != nil {
		return backend.PresenceChange{}, fmt.Errorf("nats: presence join: %w", err)
	}
	userChanged := changed
	if m.User != "" {
		first, err := p.joinUser(ctx, channel, m.User, m.Client)
		if err != nil {
			return backend.PresenceChange{}, err
		}
		userChanged = changed && first
	}
	st, err := p.count(ctx, channel, delta(changed), delta(userChanged && m.User != ""))
	if err != nil {
		return backend.PresenceChange{}, err
	}
	return backend.PresenceChange{Member: m, Changed: changed, UserChanged: userChanged, Stats: st}, nil
}

// Leave implements backend.PresenceTracker: it reads the member, takes the
// client out of its user's key (UserChanged when no other client of the
// user is alive), removes the member's key, then changes the channel's
// counts. The user's key changes before the member's so that a client in a
// user's key whose member key is gone is one that expired, never one
// leaving.
func (p *Presence) Leave(ctx context.Context, channel, client string) (backend.PresenceChange, error) {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return backend.PresenceChange{}, err
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	key := p.key(channel, client)
	value, rev, err := p.read(ctx, key)
	if err != nil {
		return backend.PresenceChange{}, fmt.Errorf("nats: presence leave: %w", err)
	}
	if rev == 0 {
		st, err := p.count(ctx, channel, 0, 0)
		return backend.PresenceChange{Stats: st}, err
	}
	var m backend.Member
	if err := json.Unmarshal(value, &m); err != nil {
		return backend.PresenceChange{}, fmt.Errorf("nats: presence leave: a member that is not JSON: %w", err)
	}
	userChanged := true
	if m.User != "" {
		if userChanged, err = p.leaveUser(ctx, channel, m.User, client); err != nil {
			return backend.PresenceChange{}, err
		}
	}
	if err := b.kv.Delete(ctx, key); err != nil {
		return backend.PresenceChange{}, fmt.Errorf("nats: presence leave: %w", err)
	}
	st, err := p.count(ctx, channel, -1, -delta(userChanged && m.User != ""))
	if err != nil {
		return backend.PresenceChange{}, err
	}
	return backend.PresenceChange{Member: m, Changed: true, UserChanged: userChanged, Stats: st}, nil
}

func delta(b bool) int {
	if b {
		return 1
	}
	return 0
}

// read returns key's value and revision as the bucket's leader has them
// (STREAM.MSG.GET): a direct get, which a replica behind may answer, could
// miss a member just written and take it for expired. Revision 0: no such
// key (never written, removed or expired).
func (p *Presence) read(ctx context.Context, key string) ([]byte, uint64, error) {
	b := p.b
	body, _ := json.Marshal(msgGet{LastFor: p.subject(key)})
	msg, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+b.cfg.PresenceBucket, body)
	if err != nil {
		return nil, 0, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, err
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, 0, nil
		}
		return nil, 0, resp.Error
	}
	if resp.Message == nil {
		return nil, 0, errors.New("empty response")
	}
	if len(resp.Message.Hdrs) > 0 {
		hdr, err := natsgo.DecodeHeadersMsg(resp.Message.Hdrs)
		if err != nil {
			return nil, 0, err
		}
		if hdr.Get(hdrKVOperation) != "" { // removed
			return nil, 0, nil
		}
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// readCAS is read for a key about to be written by compare-and-set: a
// direct get, cheaper, which a replica may answer; a stale answer only makes
// the write fail and be tried again.
func (p *Presence) readCAS(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := p.b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return e.Value(), e.Revision(), nil
}

// userClients reads a user's key: its clients and revision (0: no key).
func (p *Presence) userClients(ctx context.Context, key string) ([]string, uint64, error) {
	value, rev, err := p.readCAS(ctx, key)
	if err != nil || rev == 0 {
		return nil, 0, err
	}
	var clients []string
	if err := json.Unmarshal(value, &clients); err != nil {
		return nil, 0, fmt.Errorf("a user's clients that are not JSON: %w", err)
	}
	return clients, rev, nil
}

// alive drops from clients those whose member key is gone (expired), from
// the front, until it finds one that is there, and returns what is left and
// whether it found one. Those after the first live one are not read.
func (p *Presence) alive(ctx context.Context, channel string, clients []string) ([]string, bool, error) {
	for len(clients) > 0 {
		_, rev, err := p.read(ctx, p.key(channel, clients[0]))
		if err != nil {
			return nil, false, err
		}
		if rev != 0 {
			return clients, true, nil
		}
		clients = clients[1:]
	}
	return clients, false, nil
}

// writeUser sets a user's key to clients if its revision is still rev (0:
// there is none), deleting it when clients is empty. It says false when
// another write came first.
func (p *Presence) writeUser(ctx context.Context, key string, clients []string, rev uint64) (bool, error) {
	var err error
	switch {
	case len(clients) == 0 && rev == 0:
		return true, nil
	case len(clients) == 0:
		err = p.b.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	default:
		data, _ := json.Marshal(clients)
		if rev == 0 {
			_, err = p.b.kv.Create(ctx, key, data)
		} else {
			_, err = p.b.kv.Update(ctx, key, data, rev)
		}
	}
	if conflict(err) {
		return false, nil
	}
	return err == nil, err
}

// joinUser adds client to user's clients in channel and says whether it is
// the user's only live one.
func (p *Presence) joinUser(ctx context.Context, channel, user, client string) (bool, error) {
	key := p.userKey(channel, user)
	for range maxCAS {
		clients, rev, err := p.userClients(ctx, key)
		if err != nil {
			return false, fmt.Errorf("nats: presence join: %w", err)
		}
		others, live, err := p.alive(ctx, channel, slices.DeleteFunc(clients, func(c string) bool { return c == client }))
		if err != nil {
			return false, fmt.Errorf("nats: presence join: %w", err)
		}
		ok, err := p.writeUser(ctx, key, append(others, client), rev)
		if err != nil {
			return false, fmt.Errorf("nats: presence join: %w", err)
		}
		if ok {
			return !live, nil
		}
	}
	return false, errContended
}

// leaveUser takes client out of user's clients in channel and says whether
// it was there and none of the others is alive.
func (p *Presence) leaveUser(ctx context.Context, channel, user, client string) (bool, error) {
	key := p.userKey(channel, user)
	for range maxCAS {
		clients, rev, err := p.userClients(ctx, key)
		if err != nil {
			return false, fmt.Errorf("nats: presence leave: %w", err)
		}
		i := slices.Index(clients, client)
		if i < 0 {
			return false, nil
		}
		others, live, err := p.alive(ctx, channel, slices.Delete(clients, i, i+1))
		if err != nil {
			return false, fmt.Errorf("nats: presence leave: %w", err)
		}
		ok, err := p.writeUser(ctx, key, others, rev)
		if err != nil {
			return false, fmt.Errorf("nats: presence leave: %w", err)
		}
		if ok {
			return !live, nil
		}
	}
	return false, errContended
}

// count adds dc clients and du users to channel's counts and returns them.
// Counts missing or older than the TTL are taken from the members instead
// (Stats), which already hold the change: that is what bounds how long the
// counts of a node that died stay inflated.
func (p *Presence) count(ctx context.Context, channel string, dc, du int) (backend.PresenceStats, error) {
	b := p.b
	key := p.countKey(channel)
	for range maxCAS {
		var c counts
		value, rev, err := p.readCAS(ctx, key)
		if err != nil {
			return backend.PresenceStats{}, fmt.Errorf("nats: presence counts: %w", err)
		}
		if rev != 0 {
			if err := json.Unmarshal(value, &c); err != nil {
				return backend.PresenceStats{}, fmt.Errorf("nats: presence counts that are not JSON: %w", err)
			}
		}
		now := time.Now()
		if rev == 0 || now.UnixNano()-c.Counted > int64(b.cfg.PresenceTTL) {
			st, err := p.Stats(ctx, channel)
			if err != nil {
				return backend.PresenceStats{}, err
			}
			c = counts{Clients: st.Clients, Users: st.Users, Counted: now.UnixNano()}
		} else {
			if dc == 0 && du == 0 {
				return backend.PresenceStats{Clients: c.Clients, Users: c.Users}, nil
			}
			c.Clients, c.Users = max(c.Clients+dc, 0), max(c.Users+du, 0)
		}
		data, _ := json.Marshal(c)
		if rev == 0 {
			_, err = b.kv.Create(ctx, key, data)
		} else {
			_, err = b.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return backend.PresenceStats{Clients: c.Clients, Users: c.Users}, nil
		}
		if !conflict(err) {
			return backend.PresenceStats{}, fmt.Errorf("nats: presence counts: %w", err)
		}
	}
	return backend.PresenceStats{}, errContended
}

// Refresh implements backend.PresenceTracker: one batched direct get reads
// the members' keys (and then one their users' keys), and each one found is
// put again, asynchronously, on condition that it is still the key's last
// revision: a member removed meanwhile is not added back. A user's key is
// put again with its members, so that it lives as long as they do.
func (p *Presence) Refresh(ctx context.Context, channel string, clients []string) error {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	for batch := range slices.Chunk(clients, 1000) {
		subjects := make([]string, len(batch))
		for i, c := range batch {
			subjects[i] = p.subject(p.key(channel, c))
		}
		users := make(map[string]bool)
		err := p.reput(ctx, subjects, func(data []byte) {
			var m backend.Member
			if json.Unmarshal(data, &m) == nil && m.User != "" {
				users[m.User] = true
			}
		})
		if err != nil {
			return fmt.Errorf("nats: presence refresh: %w", err)
		}
		subjects = subjects[:0]
		for u := range users {
			subjects = append(subjects, p.subject(p.userKey(channel, u)))
		}
		if err := p.reput(ctx, subjects, nil); err != nil {
			return fmt.Errorf("nats: presence refresh: %w", err)
		}
	}
	return nil
}

// subject is the bucket's subject of key.
func (p *Presence) subject(key string) string { return "$KV." + p.b.cfg.PresenceBucket + "." + key }

// reput reads the last message of each of subjects and publishes it again
// on condition that it is still its subject's last, calling fn with each
// value found.
func (p *Presence) reput(ctx context.Context, subjects []string, fn func([]byte)) error {
	if len(subjects) == 0 {
		return nil
	}
	b := p.b
	var acks []jetstream.PubAckFuture
	err := b.direct(ctx, "KV_"+b.cfg.PresenceBucket, msgGet{MultiLast: subjects}, func(m *natsgo.Msg) error {
		if m.Header.Get(hdrKVOperation) != "" { // removed
			return nil
		}
		subject, seq := m.Header.Get(jetstream.SubjectHeader), m.Header.Get(jetstream.SequenceHeader)
		if subject == "" || seq == "" {
			return errors.New("a direct get answer without its subject or sequence")
		}
		if fn != nil {
			fn(m.Data)
		}
		msg := natsgo.NewMsg(subject)
		msg.Data = m.Data
		msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, seq)
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0))
		if err != nil {
			return err
		}
		acks = append(acks, f)
		return nil
	})
	for _, f := range acks {
		select {
		case <-f.Ok():
		case e := <-f.Err():
			if !conflict(e) && err == nil { // a conflict: removed or written since
				err = e
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}
