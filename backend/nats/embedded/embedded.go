// Package embedded runs a NATS server with JetStream inside the process: the
// server of `tether serve --nats embedded` (a single node with durable
// history) and of the tests of tether's NATS backend and clusters.
//
// It must not be imported by packages a node links without asking for an
// embedded server: the NATS server is large.
package embedded

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures an in-process NATS server.
type Config struct {
	// Dir is where JetStream keeps its files. Required.
	Dir string
	// Host and Port are where the server listens for clients. Defaults to
	// 127.0.0.1 and a free port; Port -1 also picks a free one.
	Host string
	Port int
	// Name names the server (required in a cluster, unique in it).
	Name string
	// Cluster, when set, makes the server a member of this cluster, listening
	// for routes on ClusterAddr (e.g. "127.0.0.1:6222") and connecting to
	// Routes (nats://host:port of the other members).
	Cluster     string
	ClusterAddr string
	Routes      []string
}

// Server is an in-process NATS server with JetStream.
type Server struct {
	s *server.Server
}

// Start starts a NATS server in this process with JetStream storing
// in cfg.Dir, and waits until it takes connections (at most 10s).
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded: embedded server needs a data directory")
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		NoSigs:     true,
		NoLog:      true,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if cfg.Cluster != "" {
		host, port, err := splitHostPort(cfg.ClusterAddr)
		if err != nil {
			return nil, err
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster, Host: host, Port: port}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("embedded: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: embedded server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded: embedded server did not start within 10s")
	}
	return &Server{s: s}, nil
}

func splitHostPort(addr string) (string, int, error) {
	u, err := url.Parse("nats://" + addr)
	if err != nil || u.Port() == "" {
		return "", 0, fmt.Errorf("embedded: cluster address %q: want host:port", addr)
	}
	var port int
	if _, err := fmt.Sscan(u.Port(), &port); err != nil {
		return "", 0, fmt.Errorf("embedded: cluster address %q: %w", addr, err)
	}
	return u.Hostname(), port, nil
}

// URL returns the URL clients connect to.
func (s *Server) URL() string { return s.s.ClientURL() }

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// JetStreamReady reports whether JetStream is up and, in a cluster, has a
// meta leader.
func (s *Server) JetStreamReady() bool {
	return s.s.JetStreamEnabled() && s.s.JetStreamIsCurrent()
}
