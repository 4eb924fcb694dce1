package tether

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lesismal/nbio/logging"
)

// TestNBIOLogging runs its cases in a fresh process each (nbio's logger is one
// per process): importing tether leaves nbio's logger alone; the first node
// routes it to slog, unless the embedder set one of their own.
func TestNBIOLogging(t *testing.T) {
	if c := os.Getenv("TETHER_NBIO_LOG_CASE"); c != "" {
		nbioLoggingCase(t, c)
		return
	}
	for _, c := range []string{"stock", "embedder"} {
		t.Run(c, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNBIOLogging$", "-test.count=1")
			cmd.Env = append(os.Environ(), "TETHER_NBIO_LOG_CASE="+c)
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// embedderLogger is a logger an embedder might give nbio.
type embedderLogger struct{ logging.Logger }

func nbioLoggingCase(t *testing.T, c string) {
	if logging.DefaultLogger != nbioStockLogger {
		t.Fatal("importing tether changed nbio's logger")
	}
	var probe bytes.Buffer
	logging.Output = &probe
	logging.Info("probe")
	logging.Output = os.Stdout
	if !strings.Contains(probe.String(), "probe") {
		t.Fatal("importing tether changed nbio's log level")
	}
	var mine logging.Logger = embedderLogger{nbioStockLogger}
	if c == "embedder" {
		logging.SetLogger(mine)
	}
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())
	switch got := logging.DefaultLogger; c {
	case "embedder":
		if got != mine {
			t.Fatalf("New replaced the embedder's nbio logger with %T", got)
		}
	case "stock":
		var buf bytes.Buffer
		slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
		logging.Info("engine started")
		logging.Error("accept failed: %v", "boom")
		if out := buf.String(); strings.Contains(out, "engine started") || !strings.Contains(out, "level=ERROR msg=\"accept failed: boom\" component=nbio") {
			t.Fatalf("nbio's lines through slog: %q; want the error only", out)
		}
	}
}
