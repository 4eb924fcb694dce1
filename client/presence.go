package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tetherhq/tether/protocol"
)

// Presence returns the members of channel: the connections subscribed to it,
// where its namespace keeps presence and lets this connection read it. It
// waits for a connection until ctx ends.
func (c *Client) Presence(ctx context.Context, channel string) ([]protocol.Member, error) {
	var res protocol.PresenceResult
	if err := c.callDecode(ctx, &protocol.Command{Op: protocol.OpPresence, Channel: channel}, &res); err != nil {
		return nil, err
	}
	return res.Members, nil
}

// PresenceStats returns channel's counts of members and distinct users, as
// Presence finds them.
func (c *Client) PresenceStats(ctx context.Context, channel string) (protocol.PresenceStats, error) {
	var res protocol.PresenceStats
	err := c.callDecode(ctx, &protocol.Command{Op: protocol.OpPresenceStats, Channel: channel}, &res)
	return res, err
}

// callDecode runs cmd on the live connection and decodes its result into v.
func (c *Client) callDecode(ctx context.Context, cmd *protocol.Command, v any) error {
	cn, err := c.live(ctx)
	if err != nil {
		return fmt.Errorf("client: %s: %w", cmd.Op, err)
	}
	res, err := cn.call(ctx, cmd, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res, v); err != nil {
		return fmt.Errorf("client: %s: decode result: %w", cmd.Op, err)
	}
	return nil
}

// presencePush hands a presence push to its subscription as Join, Leave and
// Occupancy events, in the order of its publications.
func (c *Client) presencePush(cn *conn, f *frame) {
	c.mu.Lock()
	s := c.subs[f.Channel]
	c.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.live != cn {
		return
	}
	if f.Joined > 0 || len(f.Join) > 0 {
		s.enqueue(item{ev: &Event{Type: Join, Channel: s.channel, Position: s.pos, Members: f.Join, Count: max(f.Joined, len(f.Join))}})
	}
	if f.Left > 0 || len(f.Leave) > 0 {
		s.enqueue(item{ev: &Event{Type: Leave, Channel: s.channel, Position: s.pos, Members: f.Leave, Count: max(f.Left, len(f.Leave))}})
	}
	if f.Occupancy != nil {
		s.enqueue(item{ev: &Event{Type: Occupancy, Channel: s.channel, Position: s.pos, Occupancy: *f.Occupancy}})
	}
}
