package main

import (
	"errors"
	"flag"

	natsgo "github.com/nats-io/nats.go"

	"github.com/tetherhq/tether"
	"github.com/tetherhq/tether/backend/nats/embedded"
)

// natsFlags are serve's NATS flags.
type natsFlags struct {
	url, creds, caFile, certFile, keyFile, dataDir string
	embeddedPort                                   int
}

// addNATSFlags adds the NATS flags to fs; what needs no work past parsing goes
// straight into cfg.
func addNATSFlags(fs *flag.FlagSet, cfg *tether.NATSConfig) *natsFlags {
	f := &natsFlags{}
	fs.StringVar(&f.url, "nats", "", "NATS server URL(s), comma-separated, to share channels with other nodes; \"embedded\": run one in this process (with --data-dir)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&f.caFile, "nats-tls-ca", "", "PEM CA file to verify the NATS servers")
	fs.StringVar(&f.certFile, "nats-tls-cert", "", "PEM client certificate for NATS (with --nats-tls-key)")
	fs.StringVar(&f.keyFile, "nats-tls-key", "", "PEM client key for --nats-tls-cert")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory of the embedded NATS server's JetStream files (--nats embedded)")
	fs.IntVar(&f.embeddedPort, "nats-embedded-port", 0, "loopback port of the embedded NATS server, for other local nodes (0: any free port)")
	fs.StringVar(&cfg.Name, "nats-name", "", "this node's name to the others (default: host name and process id)")
	fs.StringVar(&cfg.Stream, "nats-stream", "TETHER", "JetStream stream of the history")
	fs.IntVar(&cfg.Replicas, "nats-replicas", 1, "replicas of the history stream (3 on a NATS cluster)")
	fs.BoolVar(&cfg.MemoryStorage, "nats-memory", false, "keep the history stream in the NATS servers' memory instead of files")
	return f
}

// apply completes cfg from the flags. With --nats embedded it starts the
// NATS server, which stop shuts down (after the node).
func (f *natsFlags) apply(cfg *tether.NATSConfig) (stop func(), err error) {
	stop = func() {}
	if f.url == "" {
		if f.dataDir != "" {
			return stop, errors.New("--data-dir is for --nats embedded")
		}
		return stop, nil
	}
	cfg.URL = f.url
	if f.creds != "" {
		cfg.Options = append(cfg.Options, natsgo.UserCredentials(f.creds))
	}
	if f.caFile != "" {
		cfg.Options = append(cfg.Options, natsgo.RootCAs(f.caFile))
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return stop, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if f.certFile != "" {
		cfg.Options = append(cfg.Options, natsgo.ClientCert(f.certFile, f.keyFile))
	}
	if f.url != "embedded" {
		if f.dataDir != "" {
			return stop, errors.New("--data-dir is for --nats embedded")
		}
		return stop, nil
	}
	if f.dataDir == "" {
		return stop, errors.New("--nats embedded needs --data-dir, where the history is kept")
	}
	srv, err := embedded.Start(embedded.Config{Dir: f.dataDir, Port: f.embeddedPort})
	if err != nil {
		return stop, err
	}
	cfg.URL = srv.URL()
	return srv.Shutdown, nil
}
