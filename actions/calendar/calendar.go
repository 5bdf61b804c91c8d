// Package calendar is the calendar module: a community's events, added
// from chat, approved by moderators, joined by users, and announced in
// their channel 1 day, 1 hour and 15 minutes before they start.
package calendar

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

// Name is the module's name: its command subject is wb.cmd.calendar.
const Name = "calendar"

// AutoApproveLabel lets a user who is not a moderator add events that need
// no approval.
const AutoApproveLabel = "event-autoapprove"

// Limits users meet, named in the replies that enforce them. They keep the
// longest reminder and `!event <id>` inside a Twitch message.
const (
	MaxTitleLength       = 100
	MaxDescriptionLength = 250
	MaxReasonLength      = 100
)

// Config builds the calendar module.
type Config struct {
	// Store holds the jobs table reminders are scheduled in.
	Store *store.Store
	// Clock is what "tomorrow 18:00" counts from; nil is the wall clock.
	// Tests give the module and the workers' scheduler the same one.
	Clock clock.Clock
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "The community's events: added from chat, approved by moderators, announced before they start",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{
			{Name: "event", Usage: `event add "<title>" <when> [daily|weekly|monthly] [description] | event <id> | event join|leave <id> | event approve|reject <id> [reason] | event cancel <id>`,
				Description: "Adds, shows, joins and leaves events; moderators approve, reject and cancel them, creators cancel their own",
				Permission:  schemas.PermissionEveryone},
			{Name: "events", Usage: "events [page]", Description: "Lists the upcoming events", Permission: schemas.PermissionEveryone},
		},
	}
}

// New builds the calendar module.
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
		return nil, fmt.Errorf("calendar: %s needs the outbox transaction", inv.Command)
	}
	var text string
	var err error
	switch inv.Command {
	case "event":
		text, err = m.event(ctx, inv, tx)
	case "events":
		text, err = m.listEvents(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: calendar has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

func (m *module) event(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	sub, rest := actions.CutWord(inv.ArgText)
	switch strings.ToLower(sub) {
	case "add", "new":
		return m.addEvent(ctx, inv, tx, rest)
	case "join":
		return m.withEvent(ctx, inv, tx, "join", rest, m.join)
	case "leave":
		return m.withEvent(ctx, inv, tx, "leave", rest, m.leave)
	case "approve":
		return m.withEvent(ctx, inv, tx, "approve", rest, m.approve)
	case "reject":
		return m.withEvent(ctx, inv, tx, "reject", rest, m.reject)
	case "cancel":
		return m.withEvent(ctx, inv, tx, "cancel", rest, m.cancel)
	}
	if _, ok := parseNumber(sub); ok && rest == "" {
		return m.withEvent(ctx, inv, tx, "", sub, m.show)
	}
	return usage(inv), nil
}

func usage(inv *schemas.Invocation) string {
	p := actions.CommandPrefix(inv)
	return fmt.Sprintf(`Usage: %[1]sevent add "<title>" <when> [daily|weekly|monthly] [description] · %[1]sevent <id> · `+
		`%[1]sevent join|leave <id> · %[1]sevent approve|reject <id> [reason] · %[1]sevent cancel <id> · %[1]sevents [page]`, p)
}

// addUsage answers a malformed !event add, with the forms <when> takes.
func addUsage(inv *schemas.Invocation) string {
	return fmt.Sprintf(`Usage: %sevent add "<title>" <when> [daily|weekly|monthly] [description] — <when> is like `+
		`2026-12-05T18:00, 2026-12-05 18:00, today 21:30, tomorrow 18:00 or fri 20:00 (%s time).`,
		actions.CommandPrefix(inv), location(inv.Community.TimeZone).String())
}

// autoApproved: moderators, and people they trust with the label, need
// nobody's approval.
func autoApproved(inv *schemas.Invocation) bool {
	return actions.ModeratorOrLabel(inv, AutoApproveLabel)
}

// parseNumber reads "42" or "#42".
func parseNumber(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	return n, err == nil && n > 0
}

// checkText returns why text from chat cannot be stored ("" when it can):
// what a platform would show wrongly (control characters) is refused rather
// than changed.
func checkText(text, what string, max int) string {
	if n := utf8.RuneCountInString(text); n > max {
		return fmt.Sprintf("That %s is %d characters long; the most is %d.", what, n, max)
	}
	for _, r := range text {
		if unicode.IsControl(r) {
			return fmt.Sprintf("That %s contains a control character (U+%04X); please send plain text.", what, r)
		}
	}
	return ""
}

// location is the community's time zone; an unknown one is UTC, so a typo
// in the settings never stops the calendar.
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

// formatWhen names a time in the event's zone, with the year only when it
// is not this one.
func formatWhen(t, now time.Time, loc *time.Location) string {
	t = t.In(loc)
	if t.Year() != now.In(loc).Year() {
		return t.Format("Mon 2 Jan 2006 15:04 MST")
	}
	return t.Format("Mon 2 Jan 15:04 MST")
}

func pageLimit(inv *schemas.Invocation) int { return schemas.TextLimit(inv.Event.Platform) }
