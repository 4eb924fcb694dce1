package tether

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	natsgo "github.com/nats-io/nats.go"

	tnats "github.com/tetherhq/tether/backend/nats"
)

// NATSConfig connects a node to NATS (Config.NATS). docs/cluster.md says how
// to deploy and tune it.
type NATSConfig struct {
	// URL is the NATS server URL, or several separated by commas. Empty: no
	// NATS.
	URL string
	// Options are extra options of the connection: credentials and TLS
	// (natsgo.UserCredentials, natsgo.Secure, natsgo.RootCAs, ...).
	Options []natsgo.Option
	// Name names this node to the others. Defaults to the host name and the
	// process id.
	Name string
	// Stream is the JetStream stream of the history. Defaults to "TETHER".
	Stream string
	// Replicas is the stream's replica count. Defaults to 1; use 3 on a NATS
	// cluster of three or more servers.
	Replicas int
	// MemoryStorage keeps the stream in the servers' memory instead of files.
	MemoryStorage bool
	// Prefix starts every subject tether uses. Defaults to "tether".
	Prefix string
	// ConnectTimeout bounds connecting and setting up the stream in New.
	// Defaults to 10s.
	ConnectTimeout time.Duration
}

// clientPrefix starts the node's client ids: "c" for a node alone, and "c"
// with a random tag of its own for a node that shares its backends (NATS, or
// Config.Backends), so that client ids stay unique across nodes: presence
// keys its members by them, and publications name their sender by them.
func clientPrefix(cfg Config) string {
	bs := cfg.Backends
	if cfg.NATS.URL == "" && bs.Broker == nil && bs.History == nil && bs.Presence == nil {
		return "c"
	}
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	tag := make([]byte, 8)
	for i := range tag {
		tag[i] = chars[rand.IntN(len(chars))]
	}
	return "c" + string(tag) + "-"
}

// openNATS opens the NATS backend Config.NATS asks for, or returns nil.
func (n *Node) openNATS() (*tnats.Backend, error) {
	c := n.cfg.NATS
	if bs := n.cfg.Backends; c.URL == "" || (bs.Broker != nil && bs.History != nil && bs.Presence != nil) {
		return nil, nil
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d", host, os.Getpid())
		n.cfg.NATS.Name = c.Name // how the other nodes know this one
	}
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := tnats.Open(ctx, tnats.Config{
		URL: c.URL, Options: c.Options, Name: c.Name, Prefix: c.Prefix, Stream: c.Stream,
		Replicas: c.Replicas, MemoryStorage: c.MemoryStorage,
		HistorySize: n.cfg.HistorySize, HistoryTTL: n.cfg.HistoryTTL, MaxChannels: n.cfg.MaxChannels,
		Logger: n.log,
	})
	if err != nil {
		return nil, fmt.Errorf("tether: %w", err)
	}
	return b, nil
}
