package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tetherhq/tether/internal/bench"
)

const benchUsage = `usage: tether bench <conns|fanout|channels|chat|echo|reconnect|presence> [flags]

Load-tests a running server (tether serve, or bench/baseline) on this machine
and reports what it did, reading the server's /metrics for memory and CPU.

  conns      open -n subscribed connections and hold them: server memory per
             connection, connect latency
  fanout     -n subscribers on one channel, -m messages published at -rate per
             second (0: as fast as possible): deliveries per second and per
             server CPU-second, latency from the scheduled send time
  channels   -n subscribers each on its own channel, -m messages published
             through the HTTP API at -rate per second round-robin over them
             (-batch N: N per /api/batch request; -grpc: over a gRPC stream)
  chat       -n clients in rooms of -room, each publishing over its own
             connection, -rate messages per second in total
  echo       -c clients doing round trips on /ws/echo for -d
  reconnect  -n subscribers, -m messages at -rate; every connection dropped at
             once mid-way, each client resubscribes recovering from its last
             offset: time until all are back, lost and duplicated
  presence   -n members on one channel, -churners more joining and leaving it
             at -rate per second for -d (the server keeps presence there:
             bench/presence.yaml): presence pushes per member per second,
             server CPU, presence and presence_stats latency

tether bench <command> -h lists the command's flags.
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stderr, benchUsage)
		return 2
	}
	cmd := args[0]
	fs := flag.NewFlagSet("tether bench "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("target", "tether", "kind of server: tether or baseline")
	addr := fs.String("addr", "127.0.0.1:8080", "the server's host:port")
	apiKey := fs.String("api-key", os.Getenv("TETHER_API_KEY"), "API key for publishing and /metrics (env TETHER_API_KEY)")
	asJSON := fs.Bool("json", false, "print one JSON line per run instead of a table")
	runs := fs.Int("runs", 1, "how many times to run")
	timeout := fs.Duration("timeout", 5*time.Minute, "stop a run after this long")
	compress := fs.Bool("compress", false, "clients offer permessage-deflate and inflate what comes compressed")
	tokenSecret := fs.String("token-hmac-secret", "", "send connect with an HS256 token per client (users bench-N), signed with this secret")
	sendConnect := fs.Bool("connect", false, "send connect (without a token) before subscribing: the baseline of a token run")
	tokenKey := fs.String("token-key", "", "send connect with an RS256 or ES256 token per client, signed with this PEM private key")

	var publishAddr string
	var conns bench.ConnsOptions
	var fan bench.FanoutOptions
	var echo bench.EchoOptions
	var recon bench.ReconnectOptions
	var chans bench.ChannelsOptions
	var chat bench.ChatOptions
	var pres bench.PresenceOptions
	switch cmd {
	case "conns":
		fs.IntVar(&conns.Conns, "n", 10_000, "connections")
		fs.IntVar(&conns.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.DurationVar(&conns.Settle, "settle", 3*time.Second, "how long to hold them before reading the server's memory")
	case "fanout":
		fs.IntVar(&fan.Subs, "n", 10_000, "subscribers")
		fs.IntVar(&fan.Messages, "m", 100, "messages to publish")
		fs.Float64Var(&fan.Rate, "rate", 5, "messages per second offered (0: as fast as possible)")
		fs.IntVar(&fan.Payload, "payload", 64, "bytes of data per message (at least 48)")
		fs.IntVar(&fan.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.DurationVar(&fan.Drain, "drain", 10*time.Second, "how long to wait for deliveries after the last publish")
		fs.StringVar(&publishAddr, "publish-addr", "", "publish through another node's API at this host:port (a cluster: subscribers on --addr); its CPU counts too")
		fs.Func("data", "what pads each message: pad (one letter repeated) or json (chat messages)", func(v string) error {
			switch v {
			case "pad", "json":
				fan.JSON = v == "json"
				return nil
			}
			return fmt.Errorf("want pad or json, not %q", v)
		})
	case "channels":
		fs.IntVar(&chans.Subs, "n", 2_000, "subscribers, each on its own channel")
		fs.IntVar(&chans.Messages, "m", 0, "messages to publish (0: 20 seconds' worth)")
		fs.Float64Var(&chans.Rate, "rate", 500, "publishes per second")
		fs.IntVar(&chans.Payload, "payload", 64, "bytes of data per message (at least 48)")
		fs.IntVar(&chans.Publishers, "publishers", 1, "HTTP requests in flight at most, each on its own keep-alive connection")
		fs.IntVar(&chans.Batch, "batch", 0, "publish this many messages per POST /api/batch request (0: one per /api/publish)")
		fs.StringVar(&chans.GRPC, "grpc", "", "publish over one gRPC ServerAPI/PublishStream to this host:port instead of HTTP")
		fs.IntVar(&chans.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.DurationVar(&chans.Drain, "drain", 10*time.Second, "how long to wait for deliveries after the last publish")
	case "chat":
		fs.IntVar(&chat.Clients, "n", 2_000, "clients")
		fs.IntVar(&chat.Room, "room", 10, "clients per room")
		fs.IntVar(&chat.Messages, "m", 0, "messages to send (0: 20 seconds' worth)")
		fs.Float64Var(&chat.Rate, "rate", 2_000, "messages per second, all clients together")
		fs.IntVar(&chat.Payload, "payload", 64, "bytes of data per message (at least 48)")
		fs.IntVar(&chat.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.DurationVar(&chat.Drain, "drain", 10*time.Second, "how long to wait for deliveries after the last message")
	case "echo":
		fs.IntVar(&echo.Clients, "c", 50, "clients")
		fs.DurationVar(&echo.Duration, "d", 10*time.Second, "duration")
		fs.IntVar(&echo.Payload, "payload", 64, "bytes per message")
	case "reconnect":
		fs.IntVar(&recon.Subs, "n", 10_000, "subscribers")
		fs.IntVar(&recon.Messages, "m", 60, "messages to publish")
		fs.Float64Var(&recon.Rate, "rate", 5, "messages per second")
		fs.DurationVar(&recon.DropAfter, "drop-after", 0, "when to drop every connection (0: a third of the publishing time)")
		fs.IntVar(&recon.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.DurationVar(&recon.Drain, "drain", 10*time.Second, "how long to wait for deliveries after the last publish")
	case "presence":
		fs.IntVar(&pres.Members, "n", 15_000, "members holding the channel")
		fs.IntVar(&pres.Churners, "churners", 100, "connections joining and leaving in turns")
		fs.Float64Var(&pres.Rate, "rate", 500, "joins and leaves per second, together")
		fs.DurationVar(&pres.Duration, "d", 20*time.Second, "how long the churn lasts")
		fs.IntVar(&pres.Concurrency, "concurrency", 64, "connections being opened at once")
		fs.StringVar(&pres.Channel, "channel", "bench:presence", "the channel")
		fs.BoolVar(&pres.NoQueries, "no-queries", false, "send no presence or presence_stats: a baseline run on a channel without presence (-channel benchoff:presence)")
	default:
		fmt.Fprintf(stderr, "tether bench: unknown command %q\n\n%s", cmd, benchUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	t, err := bench.TargetFor(*kind, *addr)
	if err != nil {
		fmt.Fprintln(stderr, "tether bench:", err)
		return 2
	}
	t.APIKey = *apiKey
	t.Connect = *sendConnect
	if *tokenSecret != "" || *tokenKey != "" {
		n := max(conns.Conns, fan.Subs, recon.Subs, chans.Subs, chat.Clients, pres.Members+pres.Churners+2)
		if t.Token, err = benchTokens(n, *tokenSecret, *tokenKey); err != nil {
			fmt.Fprintln(stderr, "tether bench: tokens:", err)
			return 2
		}
	}
	if publishAddr != "" {
		other, err := bench.TargetFor(*kind, publishAddr)
		if err != nil {
			fmt.Fprintln(stderr, "tether bench:", err)
			return 2
		}
		t.Publish, t.MoreMetrics = other.Publish, []string{other.Metrics}
	}
	t.Compress = *compress
	if limit, err := bench.RaiseOpenFiles(); err != nil {
		fmt.Fprintln(stderr, "tether bench:", err)
	} else if !*asJSON {
		fmt.Fprintf(stdout, "open-files limit: %d\n", limit)
	}

	code := 0
	for run := 1; run <= max(*runs, 1); run++ {
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		var res bench.Result
		switch cmd {
		case "conns":
			res, err = bench.Conns(rctx, t, conns)
		case "fanout":
			res, err = bench.Fanout(rctx, t, fan)
		case "channels":
			res, err = bench.Channels(rctx, t, chans)
		case "chat":
			res, err = bench.Chat(rctx, t, chat)
		case "echo":
			res, err = bench.Echo(rctx, t, echo)
		case "reconnect":
			res, err = bench.Reconnect(rctx, t, recon)
		case "presence":
			res, err = bench.Presence(rctx, t, pres)
		}
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "tether bench %s: %v\n", cmd, err)
			return 1
		}
		if *asJSON {
			err = bench.WriteJSON(stdout, res)
		} else {
			err = bench.WriteTable(stdout, fmt.Sprintf("tether bench %s against %s at %s, run %d of %d", cmd, t.Name, *addr, run, max(*runs, 1)), res)
		}
		if err != nil {
			fmt.Fprintln(stderr, "tether bench:", err)
			return 1
		}
		if res.LimitHit() != "" {
			code = 1
		}
	}
	return code
}
