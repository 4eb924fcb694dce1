package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tetherhq/tether/backend"
)

var (
	_ backend.Presence = (*Presence)(nil)
	_ backend.Closer   = (*Presence)(nil)
	_ backend.Checker  = (*Presence)(nil)
)

// Presence is the presence store on a JetStream key-value bucket, from
// Backend.Presence. A member is one key, <channel>.<client> (both escaped),
// whose value is the member as JSON. The bucket's TTL
// (Config.PresenceTTL) applies to each key from its last Add: a member a
// node stops refreshing, because the node died, is removed by the NATS
// servers themselves within the TTL. Remove writes the key's delete marker.
// As a backend.PresenceTracker it also keeps, per channel, each user's
// clients and the counts (tracker.go).
//
// Members and Stats read the channel's keys in one batched direct get (the
// last value of every key under the channel); a channel of more members
// than one such get returns (1,024) is read through an ordered consumer
// instead. On a replicated bucket a direct get may be answered by a replica
// a few milliseconds behind the leader.
type Presence struct {
	b *Backend
}

// Presence returns the backend's presence store.
func (b *Backend) Presence() *Presence { return b.presence }

// Header of a key-value delete or purge marker (nats.go's kvop).
const hdrKVOperation = "KV-Operation"

// kvToken escapes s into one token of a key-value key: token's escaping,
// with '%' written '=' and ':' written '/', the two bytes it keeps that keys
// do not allow. Neither '=' nor '/' comes out of token, so two strings never
// share a kvToken.
func kvToken(s string) string {
	return strings.NewReplacer("%", "=", ":", "/").Replace(token(s))
}

func (p *Presence) key(channel, client string) string {
	return kvToken(channel) + "." + kvToken(client)
}

// Add implements backend.Presence.
func (p *Presence) Add(ctx context.Context, channel string, m backend.Member) error {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("nats: presence: %w", err)
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	if _, err := b.kv.Put(ctx, p.key(channel, m.Client), data); err != nil {
		return fmt.Errorf("nats: presence add: %w", err)
	}
	return nil
}

// Remove implements backend.Presence.
func (p *Presence) Remove(ctx context.Context, channel, client string) error {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return err
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	if err := b.kv.Delete(ctx, p.key(channel, client)); err != nil {
		return fmt.Errorf("nats: presence remove: %w", err)
	}
	return nil
}

// Members implements backend.Presence.
func (p *Presence) Members(ctx context.Context, channel string) ([]backend.Member, error) {
	b := p.b
	if err := b.usable(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := b.bound(ctx)
	defer cancel()
	out := []backend.Member{}
	add := func(hdr natsgo.Header, data []byte) error {
		if hdr.Get(hdrKVOperation) != "" { // removed
			return nil
		}
		var m backend.Member
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("a member that is not JSON: %w", err)
		}
		out = append(out, m)
		return nil
	}
	filter := "$KV." + b.cfg.PresenceBucket + "." + kvToken(channel) + ".*"
	err := b.direct(ctx, "KV_"+b.cfg.PresenceBucket, msgGet{MultiLast: []string{filter}}, func(m *natsgo.Msg) error {
		return add(m.Header, m.Data)
	})
	if errors.Is(err, errTooMany) {
		out = out[:0]
		err = p.watch(ctx, kvToken(channel)+".*", add)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: presence: %w", err)
	}
	return out, nil
}

// watch calls fn with the last value of every key matching filter, through
// an ordered consumer.
func (p *Presence) watch(ctx context.Context, filter string, fn func(natsgo.Header, []byte) error) error {
	w, err := p.b.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch ended")
			}
			if e == nil { // every key's last value came
				return nil
			}
			if err := fn(nil, e.Value()); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats implements backend.Presence.
func (p *Presence) Stats(ctx context.Context, channel string) (backend.PresenceStats, error) {
	ms, err := p.Members(ctx, channel)
	if err != nil {
		return backend.PresenceStats{}, err
	}
	users := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if m.User != "" {
			users[m.User] = struct{}{}
		}
	}
	return backend.PresenceStats{Clients: len(ms), Users: len(users)}, nil
}

// Check implements backend.Checker.
func (p *Presence) Check(ctx context.Context) error { return p.b.Check(ctx) }

// Close implements backend.Closer: it closes the whole Backend.
func (p *Presence) Close(ctx context.Context) error { return p.b.Close(ctx) }
