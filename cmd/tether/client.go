package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tetherhq/tether/client"
	"github.com/tetherhq/tether/protocol"
)

const clientUsage = `usage: tether client [flags] URL

Connects to a tether server (URL like ws://127.0.0.1:8080/ws), prints the
publications of every --sub channel as "CHANNEL OFFSET DATA" lines, and
publishes each line read from stdin to --pub (a line that is not JSON is sent
as a JSON string). It reconnects and recovers missed publications by itself
and says so on stderr. With --raw it speaks plain WebSocket instead (for
/ws/echo or any WebSocket server): stdin lines are sent as text frames and
every frame received is printed.

flags:
`

// multiFlag is a flag that may be given several times.
type multiFlag []string

func (m *multiFlag) String() string { return fmt.Sprint(*m) }

func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// lockedWriter serializes writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

func clientCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tether client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientUsage); fs.PrintDefaults() }
	var subs multiFlag
	fs.Var(&subs, "sub", "channel to subscribe to and print (repeatable)")
	pub := fs.String("pub", "", "channel to publish stdin lines to")
	raw := fs.Bool("raw", false, "plain WebSocket: send stdin lines as text frames, print every frame")
	token := fs.String("token", "", "token for the connect command")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	url := fs.Arg(0)
	out := &lockedWriter{w: stdout}
	errOut := &lockedWriter{w: stderr}
	lines := readLines(ctx, stdin)
	if *raw {
		if len(subs) > 0 || *pub != "" {
			fmt.Fprintln(stderr, "tether client: --raw does not go with --sub or --pub")
			return 2
		}
		return rawClient(ctx, url, lines, out, errOut)
	}
	return protocolClient(ctx, url, subs, *pub, *token, lines, out, errOut)
}

// readLines sends stdin's lines on the returned channel, which it closes at
// EOF. It stops early when ctx ends.
func readLines(ctx context.Context, r io.Reader) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return lines
}

func protocolClient(ctx context.Context, url string, subs []string, pub, token string, lines <-chan string, out, errOut *lockedWriter) int {
	onEvent := func(e client.Event) {
		switch e.Type {
		case client.Connected:
			errOut.printf("connected to %s as %s\n", url, e.Client)
		case client.Disconnected:
			errOut.printf("disconnected: %v; reconnecting\n", e.Err)
		case client.Recovered:
			errOut.printf("%s: recovered, nothing missed (at %s/%d)\n", e.Channel, e.Position.Epoch, e.Position.Offset)
		case client.Gap:
			errOut.printf("%s: GAP: could not recover from %s/%d, now at %s/%d; publications in between are lost\n",
				e.Channel, e.Previous.Epoch, e.Previous.Offset, e.Position.Epoch, e.Position.Offset)
		case client.Unsubscribed:
			errOut.printf("%s: unsubscribed by the server: %v\n", e.Channel, e.Err)
		case client.Join, client.Leave:
			errOut.printf("%s: %s\n", e.Channel, describeMembers(e))
		case client.Occupancy:
			errOut.printf("%s: %d clients, %d users\n", e.Channel, e.Occupancy.Clients, e.Occupancy.Users)
		}
	}
	backoff := client.Backoff(100*time.Millisecond, 10*time.Second)
	delay := func(attempt int) time.Duration {
		d := backoff(attempt)
		if attempt > 0 {
			errOut.printf("reconnect attempt %d failed; next in %v\n", attempt, d.Round(time.Millisecond))
		}
		return d
	}
	c, err := client.Dial(ctx, url, client.WithToken(token), client.WithEventHandler(onEvent), client.WithReconnectDelay(delay))
	if err != nil {
		errOut.printf("tether client: %v\n", err)
		return 1
	}
	defer c.Close()
	for _, ch := range subs {
		sub, err := c.Subscribe(ctx, ch, func(p *protocol.Publication) {
			out.printf("%s %d %s\n", p.Channel, p.Offset, p.Data)
		})
		if err != nil {
			errOut.printf("tether client: %v\n", err)
			return 1
		}
		pos := sub.Position()
		errOut.printf("subscribed to %s at %s/%d\n", ch, pos.Epoch, pos.Offset)
	}
	for {
		select {
		case <-ctx.Done():
			return 0
		case line, ok := <-lines:
			if !ok {
				if len(subs) > 0 {
					<-ctx.Done() // keep printing until interrupted
				}
				return 0
			}
			if line == "" {
				continue
			}
			if pub == "" {
				errOut.printf("tether client: no --pub channel: line ignored\n")
				continue
			}
			data := json.RawMessage(line)
			if !json.Valid(data) {
				data = json.RawMessage(strconv.Quote(line))
			}
			if _, err := c.Publish(ctx, pub, data); err != nil {
				if ctx.Err() != nil {
					return 0
				}
				errOut.printf("publish: %v\n", err)
			}
		}
	}
}

// rawClient speaks plain WebSocket, reconnecting with the library's backoff.
func rawClient(ctx context.Context, url string, lines <-chan string, out, errOut *lockedWriter) int {
	delay := client.Backoff(100*time.Millisecond, 10*time.Second)
	for attempt := 0; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ws, _, err := websocket.Dial(dctx, url, nil)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			if attempt == 0 {
				errOut.printf("tether client: %v\n", err)
				return 1
			}
			errOut.printf("reconnect failed: %v\n", err)
		} else {
			ws.SetReadLimit(1 << 22)
			errOut.printf("connected to %s\n", url)
			done, err := rawSession(ctx, ws, lines, out)
			if done {
				return 0
			}
			errOut.printf("disconnected: %v; reconnecting\n", err)
			attempt = 0
		}
		t := time.NewTimer(delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-t.C:
		}
	}
}

// rawSession runs one connection: it prints what comes and sends stdin lines.
// done reports that the session ended because stdin or ctx did.
func rawSession(ctx context.Context, ws *websocket.Conn, lines <-chan string, out *lockedWriter) (done bool, err error) {
	defer ws.CloseNow()
	readErr := make(chan error, 1)
	go func() {
		for {
			typ, b, err := ws.Read(context.Background())
			if err != nil {
				readErr <- err
				return
			}
			if typ == websocket.MessageBinary {
				out.printf("binary %x\n", b)
				continue
			}
			out.printf("%s\n", b)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			_ = ws.Close(websocket.StatusNormalClosure, "")
			return true, nil
		case err := <-readErr:
			return false, err
		case line, ok := <-lines:
			if !ok {
				_ = ws.Close(websocket.StatusNormalClosure, "") // waits for the server's close frame
				return true, nil
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := ws.Write(wctx, websocket.MessageText, []byte(line))
			cancel()
			if err != nil {
				return false, err
			}
		}
	}
}

// describeMembers says who joined or left: "joined: ann (c1), c2", or "3
// joined" when the server did not list them.
func describeMembers(e client.Event) string {
	verb := "joined"
	if e.Type == client.Leave {
		verb = "left"
	}
	if len(e.Members) == 0 {
		return fmt.Sprintf("%d %s", e.Count, verb)
	}
	names := make([]string, len(e.Members))
	for i, m := range e.Members {
		names[i] = m.Client
		if m.User != "" {
			names[i] = m.User + " (" + m.Client + ")"
		}
	}
	return verb + ": " + strings.Join(names, ", ")
}
