package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/auth/namespaces"
)

// fileConfig is a --config file: any `tether serve` flag, spelled with
// underscores (http_addr: 127.0.0.1:8080), and the namespaces.
type fileConfig struct {
	Namespaces []namespaces.Namespace `yaml:"namespaces"`
	Flags      map[string]yaml.Node   `yaml:",inline"`
}

// applyConfigFile reads the YAML file at path and sets every flag of fs that
// neither the command line nor the environment set. An unknown key is an
// error that names it and its line.
func applyConfigFile(fs *flag.FlagSet, path string) (*fileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	keys := make([]string, 0, len(fc.Flags))
	for k := range fc.Flags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		node := fc.Flags[k]
		name := strings.ReplaceAll(k, "_", "-")
		if fs.Lookup(name) == nil || name == "config" {
			return nil, fmt.Errorf("%s: line %d: unknown key %q", path, node.Line, k)
		}
		if given[name] {
			continue
		}
		v, err := scalar(&node)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %s: %w", path, node.Line, k, err)
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("%s: line %d: %s: %w", path, node.Line, k, err)
		}
	}
	return &fc, nil
}

// scalar is a flag's value from a YAML scalar, or a list joined by commas.
func scalar(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.Value, nil
	case yaml.SequenceNode:
		var vs []string
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return "", errors.New("a list of plain values is expected")
			}
			vs = append(vs, c.Value)
		}
		return strings.Join(vs, ","), nil
	}
	return "", errors.New("a plain value or a list is expected")
}

// channelHistory makes the namespaces' history_size, history_ttl and recover
// the node's per-channel history settings, when one of them sets any. A NATS
// stream keeps one size and age for every channel: with NATS, a namespace
// that sets history_size or history_ttl is an error.
func channelHistory(cfg *tether.Config, z *namespaces.Authorizer, nss []namespaces.Namespace, nats bool) error {
	set := false
	for _, n := range nss {
		if nats && n.SetsHistory() {
			return fmt.Errorf("namespace %q sets history_size or history_ttl: with NATS one JetStream stream keeps the same history for every channel (--history-size, --history-ttl)", n.Name)
		}
		set = set || n.SetsHistory() || n.Recover != nil
	}
	if set {
		cfg.ChannelHistory = z.History
	}
	return nil
}
