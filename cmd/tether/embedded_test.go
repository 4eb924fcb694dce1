package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestEmbeddedNATSSurvivesSIGKILL runs the real binary with --nats embedded:
// publications made before a SIGKILL are still there after a restart on the
// same --data-dir, in the same epoch, and a client recovers them with
// recovered:true.
func TestEmbeddedNATSSurvivesSIGKILL(t *testing.T) {
	bin := tetherBinary(t)
	dataDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func() (*exec.Cmd, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, "serve", "--nats", "embedded", "--data-dir", dataDir,
			"--http-addr", "127.0.0.1:0", "--tcp-addr", "", "--grpc-addr", "")
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the banner: %v", err)
		}
		addr := regexp.MustCompile(`http://([0-9.:]+)/`).FindStringSubmatch(line)
		if addr == nil {
			t.Fatalf("banner %q has no address", line)
		}
		return cmd, addr[1]
	}
	publish := func(addr string, n int) (pos struct {
		Epoch  string `json:"epoch"`
		Offset uint64 `json:"offset"`
	}) {
		t.Helper()
		body := fmt.Sprintf(`{"channel":"news","data":{"n":%d}}`, n)
		resp, err := http.Post("http://"+addr+"/api/publish", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&pos); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("publish: %d %v", resp.StatusCode, err)
		}
		return pos
	}

	cmd, addr := start()
	var epoch string
	for i := 1; i <= 10; i++ {
		p := publish(addr, i)
		if p.Offset != uint64(i) {
			t.Fatalf("publish #%d got offset %d", i, p.Offset)
		}
		epoch = p.Epoch
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown at all
		t.Fatal(err)
	}
	_ = cmd.Wait()

	_, addr = start()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	sub := fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"news","recover":{"epoch":%q,"offset":4}}`, epoch)
	if err := c.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Result struct {
			Epoch        string `json:"epoch"`
			Offset       uint64 `json:"offset"`
			Recovered    bool   `json:"recovered"`
			Publications []struct {
				Offset uint64 `json:"offset"`
			} `json:"publications"`
		} `json:"result"`
	}
	if err := json.Unmarshal(msg, &reply); err != nil {
		t.Fatalf("reply %s: %v", msg, err)
	}
	r := reply.Result
	if r.Epoch != epoch || r.Offset != 10 || !r.Recovered || len(r.Publications) != 6 || r.Publications[0].Offset != 5 {
		t.Fatalf("subscribe after SIGKILL and restart: %s; want epoch %s, offset 10, recovered, publications 5..10", msg, epoch)
	}
	if p := publish(addr, 11); p.Epoch != epoch || p.Offset != 11 {
		t.Fatalf("publish after the restart got %+v, want %s/11", p, epoch)
	}
}

// TestServeNATSFlags checks the NATS flags that cannot work together are
// refused before anything starts, and that NATS unreachable at start is a
// clear error.
func TestServeNATSFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"embedded without a data dir", []string{"--nats", "embedded"}, 2, "needs --data-dir"},
		{"data dir without embedded", []string{"--data-dir", t.TempDir()}, 2, "--data-dir is for --nats embedded"},
		{"half a client certificate", []string{"--nats", "nats://127.0.0.1:1", "--nats-tls-cert", "c.pem"}, 2, "go together"},
		{"nothing listening", []string{"--nats", "nats://u:secret@127.0.0.1:1"}, 1, "nats: no server reachable at nats://***@127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"serve", "--http-addr", "127.0.0.1:0", "--tcp-addr", "", "--grpc-addr", ""}, tt.args...)
			code := run(context.Background(), args, &out, &errb)
			if code != tt.code || !strings.Contains(errb.String(), tt.msg) || strings.Contains(errb.String(), "secret") {
				t.Fatalf("exit %d, stderr %q; want %d and %q, without the password", code, errb.String(), tt.code, tt.msg)
			}
		})
	}
}
