package main

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSIGTERM runs the real binary: on SIGTERM it tells its clients to
// reconnect, closes them with 1001 and exits 0 within --shutdown-timeout.
func TestSIGTERM(t *testing.T) {
	bin := tetherBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--http-addr", "127.0.0.1:0", "--tcp-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--shutdown-timeout", "3s")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the banner: %v", err)
	}
	addr := regexp.MustCompile(`http://([0-9.:]+)/`).FindStringSubmatch(line)
	if addr == nil {
		t.Fatalf("banner %q has no address", line)
	}
	c, _, err := websocket.Dial(ctx, "ws://"+addr[1]+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"id":1,"op":"subscribe","channel":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Read(ctx); err != nil { // the subscribe reply
		t.Fatal(err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, push, err := c.Read(ctx)
	if err != nil || !regexp.MustCompile(`"op":"disconnect","code":1001,.*"reconnect":true`).Match(push) {
		t.Fatalf("after SIGTERM: %s, %v; want a disconnect push with reconnect", push, err)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("close: %v, want 1001", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("took %v to exit, over the 3s shutdown timeout", took)
	}
}
