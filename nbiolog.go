package tether

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lesismal/nbio/logging"
)

// nbioStockLogger is the logger nbio starts with (it prints every Info line to
// stdout). Reading it here changes nothing.
var nbioStockLogger = logging.DefaultLogger

var nbioLogOnce sync.Once

// routeNBIOLogs sends nbio's own log lines, which go to one logger for the
// whole process, to slog.Default: its warnings and errors, not its start and
// stop chatter. It does so once, when the first node starts, and only if the
// embedder left nbio's logger as nbio made it; an embedder who called
// logging.SetLogger before New keeps theirs. (Importing tether changes nothing:
// see docs/decisions/nbio-logging.md.)
func routeNBIOLogs() {
	nbioLogOnce.Do(func() {
		if logging.DefaultLogger == nbioStockLogger {
			logging.SetLogger(nbioSlog{})
		}
	})
}

// nbioSlog is an nbio logging.Logger writing to slog.Default, looked up at each
// line so that a later slog.SetDefault applies.
type nbioSlog struct{}

func (nbioSlog) Debug(string, ...any) {}
func (nbioSlog) Info(string, ...any)  {}

func (nbioSlog) Warn(format string, v ...any) { nbioLog(slog.LevelWarn, format, v) }

func (nbioSlog) Error(format string, v ...any) { nbioLog(slog.LevelError, format, v) }

func nbioLog(level slog.Level, format string, v []any) {
	l := slog.Default()
	if l.Enabled(context.Background(), level) {
		l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nbio")
	}
}
