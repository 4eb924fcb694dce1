// Command tether is the tether server and its tools.
//
//	tether serve [flags]    run a server (tether serve -h lists the flags)
//	tether bench <command>  load-test a running server (tether bench -h)
//	tether client [flags] URL  an interactive client (tether client -h)
//	tether token [flags]    print an HS256 token for development (tether token -h)
//
// Every flag can also be set with an environment variable: --http-addr is
// TETHER_HTTP_ADDR. A flag given on the command line wins.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: tether <command> [flags]

commands:
  serve    run a tether server
  bench    load-test a running server: conns, fanout, echo
  client   connect to a server: print subscriptions, publish stdin lines
  token    print an HS256 connection token for development (--secret, --user)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "client":
		return clientCmd(ctx, args[1:], os.Stdin, stdout, stderr)
	case "token":
		return tokenCmd(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "tether: unknown command %q\n\n%s", args[0], usage)
	return 2
}
