// Package memories is the memories module: a community's quotes
// (!quote), bookmarks (!url, !urls) and reminders (!remind), kept in
// PostgreSQL and shared by every channel of the community.
package memories

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // community time zones must load on hosts without a zoneinfo database
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.memories.
const Name = "memories"

// WriterLabel lets a user who is not a moderator add quotes and bookmarks.
const WriterLabel = "memories"

// Limits users meet, named in the replies that enforce them.
const (
	MaxQuoteLength      = 400
	MaxAuthorLength     = 50
	MaxURLLength        = 400
	MaxReminderLength   = 300 // the firing's greeting and lateness note must still fit Twitch's 500
	MaxSearchTerm       = 100
	MinSearchTerm       = 2
	MaxPendingReminders = 10
	MinReminder         = 10 * time.Second
	MaxReminder         = 365 * 24 * time.Hour
)

// Config builds the memories module.
type Config struct {
	// Store holds the jobs table reminders are scheduled in.
	Store *store.Store
	// Clock is what "in 10m" and "at 18:00" count from; nil is the wall
	// clock. Tests give the module and the workers' scheduler the same one.
	Clock clock.Clock
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "The community's quotes, bookmarks and reminders",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{
			{Name: "quote", Usage: "quote [number] | quote add <text> [- author] | quote search <term> [page] | quote remove <number>",
				Description: "Shows a random quote or quote #n; moderators (or the memories label) add, moderators remove",
				Permission:  schemas.PermissionEveryone},
			{Name: "url", Usage: "url <name> | url add <name> <url> | url remove <name>",
				Description: "Shows a bookmark; moderators (or the memories label) add and remove them",
				Permission:  schemas.PermissionEveryone},
			{Name: "urls", Usage: "urls [page]", Description: "Lists the bookmarks", Permission: schemas.PermissionEveryone},
			{Name: "remind", Usage: "remind me|here in <duration>|at <HH:MM> <text> | remind list [page] | remind cancel <number>",
				Description: "Reminds you (privately) or the channel later; durations like 90s, 10m, 2h30m, 1d",
				Permission:  schemas.PermissionEveryone},
		},
	}
}

// New builds the memories module.
func New(cfg Config) actions.Module {
	m := &module{st: cfg.Store, clock: cfg.Clock}
	if m.clock == nil {
		m.clock = clock.Real{}
	}
	return actions.Module{Manifest: Manifest(), Handle: m.handle, Fire: m.fire}
}

type module struct {
	st    *store.Store
	clock clock.Clock
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if tx == nil {
		return nil, fmt.Errorf("memories: %s needs the outbox transaction", inv.Command)
	}
	var text string
	var vis schemas.Visibility // empty: public
	var err error
	switch inv.Command {
	case "quote":
		text, err = m.quote(ctx, inv, tx)
	case "url":
		text, err = m.url(ctx, inv, tx)
	case "urls":
		text, err = m.urls(ctx, inv, tx)
	case "remind":
		text, vis, err = m.remind(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: memories has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text, Visibility: vis}}}, nil
}

// isWriter: quotes and bookmarks are the community's memory, so only people
// it trusts write them.
func isWriter(inv *schemas.Invocation) bool { return actions.ModeratorOrLabel(inv, WriterLabel) }

// checkText returns why text from chat cannot be stored ("" when it can).
// Text is stored and shown exactly as typed, so what a platform would show
// wrongly or not at all (control characters) is refused rather than changed.
func checkText(text, what string, max int) string {
	if n := utf8.RuneCountInString(text); n > max {
		return fmt.Sprintf("That %s is %d characters long; the most is %d.", what, n, max)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return fmt.Sprintf("That %s contains a control character (U+%04X); please send plain text.", what, r)
		}
	}
	return ""
}

// parseNumber reads "42" or "#42".
func parseNumber(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return n, err == nil && n > 0
}

// parsePage reads a page number typed as the last argument.
func parsePage(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n > 0
}

// splitPage separates a trailing page number from the words before it; a
// lone number is the words, not a page (`!quote search 1984`).
func splitPage(s string) (string, int) {
	s = strings.TrimSpace(s)
	i := strings.LastIndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, 1
	}
	if n, ok := parsePage(s[i+1:]); ok {
		return strings.TrimSpace(s[:i]), n
	}
	return s, 1
}

// nextNumber takes the community's next quote or reminder number. The
// counter row stays locked until the transaction ends, so concurrent adds
// take turns and never share a number; a rolled-back add gives its number
// back, a committed one keeps it for good.
func nextNumber(ctx context.Context, tx pgx.Tx, communityID, kind string) (int64, error) {
	var n int64
	err := tx.QueryRow(ctx, `INSERT INTO memories_counters (community_id, kind, last) VALUES ($1, $2, 1)
		ON CONFLICT (community_id, kind) DO UPDATE SET last = memories_counters.last + 1
		RETURNING last`, communityID, kind).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("memories: unable to number the %s: %w", kind, err)
	}
	return n, nil
}

// location is the community's time zone; an unknown one is UTC, so a
// typo in the settings never stops reminders.
func location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return time.UTC
	}
	return loc
}

func pageLimit(inv *schemas.Invocation) int { return schemas.TextLimit(inv.Event.Platform) }
