// Package logging builds the process logger (log/slog, text or JSON) and adapts it for the
// libraries that bring their own logger interface, so every line leaves through one handler.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// New returns a logger writing to w in format "text" or "json" at level debug|info|warn|error.
func New(w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // validated by config; info on anything else
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Asynq adapts slog to asynq.Logger.
type Asynq struct{ L *slog.Logger }

func (a Asynq) Debug(args ...any) { a.L.Debug(fmt.Sprint(args...)) }
func (a Asynq) Info(args ...any)  { a.L.Info(fmt.Sprint(args...)) }
func (a Asynq) Warn(args ...any)  { a.L.Warn(fmt.Sprint(args...)) }
func (a Asynq) Error(args ...any) { a.L.Error(fmt.Sprint(args...)) }

// Fatal logs and exits, as asynq's contract requires; asynq calls it only on unrecoverable
// start-up problems.
func (a Asynq) Fatal(args ...any) {
	a.L.Error(fmt.Sprint(args...))
	os.Exit(1)
}
