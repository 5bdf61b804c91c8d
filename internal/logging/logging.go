// Package logging sets up log/slog: tint on a terminal, JSON otherwise, with
// the fixed attribute keys every part uses.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
)

// Fixed attribute keys, so that logs of every part can be searched alike.
const (
	KeyPart      = "part"
	KeyPlatform  = "platform"
	KeyChannel   = "channel"
	KeyCommunity = "community"
	KeyModule    = "module"
	KeyCommand   = "command"
	KeySubject   = "subject"
	KeyStream    = "stream"
	KeyConsumer  = "consumer"
	KeySeq       = "seq"
	KeyEvent     = "event_id"
	KeyID        = "id"
	KeyError     = "err"
	KeyReason    = "reason"
	KeyURL       = "url"
	KeyAddr      = "addr"
	KeyDuration  = "duration"
)

// Options choose the format and level.
type Options struct {
	Level  string // debug, info, warn, error
	Format string // auto, text, json
}

// New builds a logger writing to w.
func New(w io.Writer, o Options) *slog.Logger {
	level := ParseLevel(o.Level)
	format := o.Format
	if format == "" || format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, TimeFormat: time.TimeOnly}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// ParseLevel reads a level name; unknown names mean info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Err is the attribute for an error.
func Err(err error) slog.Attr { return slog.Any(KeyError, err) }

// Discard is a logger that writes nothing, for tests and quiet commands.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
