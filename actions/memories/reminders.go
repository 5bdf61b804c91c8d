package memories

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/xhit/go-str2duration/v2"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// JobKind is the kind of the scheduled jobs reminders are.
const JobKind = "reminder"

// Where a reminder is delivered.
const (
	toMe   = "me"   // privately, to whoever set it
	toHere = "here" // publicly, in the channel it was set in
)

// reminder is a reminder job's payload.
type reminder struct {
	// Number is what users call it by (!remind cancel 3), per community.
	Number int64  `json:"number"`
	Text   string `json:"text"`
	// Who is the name the firing greets.
	Who      string `json:"who"`
	UserID   string `json:"user_id"`
	Where    string `json:"where"`
	TimeZone string `json:"time_zone"`
}

var clockTimeRe = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)

func remindUsage(inv *schemas.Invocation) string {
	p := actions.CommandPrefix(inv)
	return fmt.Sprintf("Usage: %[1]sremind me|here in <duration> <text> (durations like 90s, 10m, 2h30m, 1d) · "+
		"%[1]sremind me|here at <HH:MM> <text> · %[1]sremind list [page] · %[1]sremind cancel <number>", p)
}

func (m *module) remind(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, schemas.Visibility, error) {
	sub, rest := actions.CutWord(inv.ArgText)
	switch strings.ToLower(sub) {
	case toMe, toHere:
		text, err := m.addReminder(ctx, inv, tx, strings.ToLower(sub), rest)
		return text, "", err
	case "list":
		// Private: the list shows the texts of reminders meant for the user alone.
		text, err := m.listReminders(ctx, inv, tx, rest)
		return text, schemas.VisibilityPrivate, err
	case "cancel", "remove", "delete":
		text, err := m.cancelReminder(ctx, inv, tx, rest)
		return text, "", err
	}
	return remindUsage(inv), "", nil
}

// dueTime reads "in <duration>" or "at <HH:MM>" from now, in loc.
func dueTime(how, when string, now time.Time, loc *time.Location) (time.Time, string) {
	switch strings.ToLower(how) {
	case "in":
		d, err := str2duration.ParseDuration(strings.ToLower(when))
		if err != nil {
			return time.Time{}, fmt.Sprintf("%q is not a duration; write it like 90s, 10m, 2h30m, 1d or 1d2h.", when)
		}
		switch {
		case d < MinReminder:
			return time.Time{}, fmt.Sprintf("That is too soon: a reminder is at least %s away.", humanDuration(MinReminder))
		case d > MaxReminder:
			return time.Time{}, "That is too far off: a reminder is at most 365 days away."
		}
		return now.Add(d), ""
	case "at":
		match := clockTimeRe.FindStringSubmatch(when)
		if match == nil {
			return time.Time{}, fmt.Sprintf("%q is not a time of day; write it as HH:MM, like 18:00 or 9:30.", when)
		}
		h, _ := strconv.Atoi(match[1])
		mi, _ := strconv.Atoi(match[2])
		local := now.In(loc)
		due := time.Date(local.Year(), local.Month(), local.Day(), h, mi, 0, 0, loc)
		if !due.After(now) {
			due = time.Date(local.Year(), local.Month(), local.Day()+1, h, mi, 0, 0, loc)
		}
		return due, ""
	}
	return time.Time{}, fmt.Sprintf("say when with \"in\" or \"at\", not %q", how)
}

func (m *module) addReminder(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, where, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	how, rest := actions.CutWord(rest)
	when, text := actions.CutWord(rest)
	if when == "" || text == "" || (!strings.EqualFold(how, "in") && !strings.EqualFold(how, "at")) {
		return remindUsage(inv), nil
	}
	loc := location(inv.Community.TimeZone)
	now := m.clock.Now()
	due, why := dueTime(how, when, now, loc)
	if why != "" {
		return why, nil
	}
	if why := checkText(text, "reminder", MaxReminderLength); why != "" {
		return why, nil
	}

	// Two reminders set at once by one user must not both pass the limit.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('memories:reminders:' || $1 || ':' || $2))`,
		inv.Community.ID, actions.UserKey(inv)); err != nil {
		return "", fmt.Errorf("memories: unable to lock reminders: %w", err)
	}
	pending, err := m.st.PendingJobs(ctx, tx, inv.Community.ID, Name, JobKind, actions.UserKey(inv))
	if err != nil {
		return "", fmt.Errorf("memories: unable to count reminders: %w", err)
	}
	if len(pending) >= MaxPendingReminders {
		return fmt.Sprintf("You already have %d pending reminders, the most there can be. See them with %sremind list and cancel one with %sremind cancel <number>.",
			len(pending), p, p), nil
	}

	n, err := nextNumber(ctx, tx, inv.Community.ID, "reminder")
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(reminder{Number: n, Text: text, Who: inv.Event.User.Name(), UserID: inv.Event.User.ID,
		Where: where, TimeZone: loc.String()})
	if err != nil {
		return "", fmt.Errorf("memories: unable to encode reminder: %w", err)
	}
	target := schemas.TargetOf(&inv.Event)
	// A reminder is a new message, not an answer to one that may be gone by then.
	target.ReplyToID = ""
	if where == toHere {
		target.UserID = ""
	}
	if _, err := actions.Schedule(ctx, m.st, tx, inv, 1, store.Job{Kind: JobKind, DueAt: due, Payload: payload,
		Target: target, CreatedBy: actions.UserKey(inv)}); err != nil {
		return "", fmt.Errorf("memories: unable to schedule reminder: %w", err)
	}
	how = "I'll send it to you privately."
	if where == toHere {
		how = "I'll post it here."
	}
	return fmt.Sprintf("Reminder #%d set for %s (in %s); %s", n, formatWhen(due, now, loc), humanDuration(due.Sub(now)), how), nil
}

// formatWhen names a time in the community's zone, with the year only when
// it is not this one.
func formatWhen(t, now time.Time, loc *time.Location) string {
	t = t.In(loc)
	if t.Year() != now.In(loc).Year() {
		return t.Format("Mon 2 Jan 2006 15:04 MST")
	}
	return t.Format("Mon 2 Jan 15:04 MST")
}

// humanDuration rounds to what a person cares about: seconds under an
// hour, minutes above.
func humanDuration(d time.Duration) string {
	if d < time.Hour {
		return str2duration.String(d.Round(time.Second))
	}
	return str2duration.String(d.Round(time.Minute))
}

func decodeReminder(job *store.Job) (reminder, error) {
	var r reminder
	if err := json.Unmarshal(job.Payload, &r); err != nil {
		return r, fmt.Errorf("memories: reminder job %s has an unreadable payload: %w", job.ID, err)
	}
	return r, nil
}

func (m *module) listReminders(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, arg string) (string, error) {
	p := actions.CommandPrefix(inv)
	page := 1
	if arg != "" {
		n, ok := parsePage(arg)
		if !ok {
			return fmt.Sprintf("Usage: %sremind list [page]", p), nil
		}
		page = n
	}
	jobs, err := m.st.PendingJobs(ctx, tx, inv.Community.ID, Name, JobKind, actions.UserKey(inv))
	if err != nil {
		return "", fmt.Errorf("memories: unable to list reminders: %w", err)
	}
	loc := location(inv.Community.TimeZone)
	now := m.clock.Now()
	items := make([]string, 0, len(jobs))
	for i := range jobs {
		r, err := decodeReminder(&jobs[i])
		if err != nil {
			return "", err
		}
		items = append(items, fmt.Sprintf("#%d %s (%s): %s", r.Number, formatWhen(jobs[i].DueAt, now, loc), r.Where, actions.Clip(r.Text, 60)))
	}
	text, _ := actions.Listing{
		Header: "Your reminders:",
		Items:  items,
		Empty:  fmt.Sprintf("You have no pending reminders. Set one with %sremind me in 10m <text>.", p),
		More:   func(n int) string { return p + "remind list " + strconv.Itoa(n) },
	}.Page(page, pageLimit(inv))
	return text, nil
}

func (m *module) cancelReminder(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	n, ok := parseNumber(rest)
	if !ok {
		return fmt.Sprintf("Usage: %sremind cancel <number> (%sremind list shows the numbers)", actions.CommandPrefix(inv), actions.CommandPrefix(inv)), nil
	}
	jobs, err := m.st.PendingJobs(ctx, tx, inv.Community.ID, Name, JobKind, "")
	if err != nil {
		return "", fmt.Errorf("memories: unable to find reminder: %w", err)
	}
	for i := range jobs {
		r, err := decodeReminder(&jobs[i])
		if err != nil {
			return "", err
		}
		if r.Number != n {
			continue
		}
		own := jobs[i].CreatedBy == actions.UserKey(inv)
		if !own && !actions.IsModerator(inv) {
			// Not naming the owner: a private reminder is nobody else's business.
			return fmt.Sprintf("Reminder #%d is not yours; only its owner or a moderator can cancel it.", n), nil
		}
		if err := m.st.CancelJob(ctx, tx, inv.Community.ID, jobs[i].ID); err != nil {
			return "", fmt.Errorf("memories: unable to cancel reminder: %w", err)
		}
		if !own {
			return fmt.Sprintf("Reminder #%d (%s's) cancelled.", n, r.Who), nil
		}
		return fmt.Sprintf("Reminder #%d cancelled.", n), nil
	}
	return fmt.Sprintf("There is no pending reminder #%d.", n), nil
}

// fire delivers a reminder that came due.
func (m *module) fire(ctx context.Context, job *store.Job, late bool, _ pgx.Tx) (*schemas.Result, *time.Time, error) {
	if job.Kind != JobKind {
		return nil, nil, fmt.Errorf("memories: job %s has unknown kind %q", job.ID, job.Kind)
	}
	r, err := decodeReminder(job)
	if err != nil {
		return nil, nil, err
	}
	text := fmt.Sprintf("⏰ %s, reminder: %s", r.Who, r.Text)
	if late {
		loc := location(r.TimeZone)
		due, now := job.DueAt.In(loc), m.clock.Now().In(loc)
		at := due.Format("15:04")
		if due.YearDay() != now.YearDay() || due.Year() != now.Year() {
			at = formatWhen(due, now, loc)
		}
		text += fmt.Sprintf(" (sent late: it was due at %s)", at)
	}
	vis := schemas.VisibilityPublic
	if r.Where == toMe {
		vis = schemas.VisibilityPrivate
	}
	return &schemas.Result{Version: schemas.Version, Module: Name,
		Replies: []schemas.ReplyText{{Text: text, Visibility: vis}}}, nil, nil
}
