package calendar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/schemas"
)

// Event states.
const (
	statePending   = "pending"
	stateApproved  = "approved"
	stateRejected  = "rejected"
	stateCancelled = "cancelled"
)

// Recurrences an event may have ("" is a one-off).
var recurrences = map[string]bool{"daily": true, "weekly": true, "monthly": true}

type event struct {
	communityID   string
	number        int64
	title         string
	description   string
	startsAt      time.Time
	anchorAt      time.Time
	occurrence    int
	recurrence    string
	timeZone      string
	state         string
	target        schemas.Target
	createdBy     string
	createdByName string
	decidedBy     string
	reason        string
}

const eventColumns = `community_id::text, number, title, description, starts_at, anchor_at, occurrence, recurrence, time_zone, state,
	target, created_by, created_by_name, decided_by, reason`

func scanEvent(r pgx.Row) (event, error) {
	var e event
	var target []byte
	err := r.Scan(&e.communityID, &e.number, &e.title, &e.description, &e.startsAt, &e.anchorAt, &e.occurrence, &e.recurrence,
		&e.timeZone, &e.state, &target, &e.createdBy, &e.createdByName, &e.decidedBy, &e.reason)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(target, &e.target); err != nil {
		return e, fmt.Errorf("calendar: event #%d has an unreadable target: %w", e.number, err)
	}
	return e, nil
}

// loadEvent reads an event and locks it until the transaction ends, so two
// moderators deciding at once take turns. ok is false when there is none.
func loadEvent(ctx context.Context, tx pgx.Tx, communityID string, number int64) (event, bool, error) {
	e, err := scanEvent(tx.QueryRow(ctx, `SELECT `+eventColumns+` FROM calendar_events
		WHERE community_id = $1 AND number = $2 FOR UPDATE`, communityID, number))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("calendar: unable to read event #%d: %w", number, err)
	}
	return e, true, nil
}

// occurrenceAt is the start of occurrence k (from 0) of a recurring event,
// counted from its first start in its own zone, so a weekly 20:00 stays at
// 20:00 across daylight saving, and a monthly event on the 31st falls on
// the last day of shorter months.
func occurrenceAt(anchor time.Time, k int, recurrence string, loc *time.Location) time.Time {
	a := anchor.In(loc)
	switch recurrence {
	case "daily":
		return time.Date(a.Year(), a.Month(), a.Day()+k, a.Hour(), a.Minute(), a.Second(), 0, loc)
	case "weekly":
		return time.Date(a.Year(), a.Month(), a.Day()+7*k, a.Hour(), a.Minute(), a.Second(), 0, loc)
	case "monthly":
		first := time.Date(a.Year(), a.Month()+time.Month(k), 1, a.Hour(), a.Minute(), a.Second(), 0, loc)
		last := first.AddDate(0, 1, -1).Day()
		return time.Date(first.Year(), first.Month(), min(a.Day(), last), a.Hour(), a.Minute(), a.Second(), 0, loc)
	}
	return anchor
}

// splitTitle takes the quoted title off the front of s ("…" or “…”).
func splitTitle(s string) (title, rest string, ok bool) {
	s = strings.TrimSpace(s)
	var closing string
	switch {
	case strings.HasPrefix(s, `"`):
		s, closing = s[1:], `"`
	case strings.HasPrefix(s, "“"):
		s, closing = strings.TrimPrefix(s, "“"), "”"
	default:
		return "", "", false
	}
	i := strings.Index(s, closing)
	if i < 0 {
		return "", "", false
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+len(closing):]), true
}

func (m *module) addEvent(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, args string) (string, error) {
	title, rest, ok := splitTitle(args)
	if !ok || title == "" {
		return addUsage(inv), nil
	}
	if why := checkText(title, "title", MaxTitleLength); why != "" {
		return why, nil
	}
	loc := location(inv.Community.TimeZone)
	now := m.clock.Now()
	start, rest, why := parseWhen(rest, now, loc)
	if why != "" {
		return why + " " + addUsage(inv), nil
	}
	recurrence := ""
	if word, more := actions.CutWord(rest); recurrences[strings.ToLower(word)] {
		recurrence, rest = strings.ToLower(word), more
	}
	description := rest
	if why := checkText(description, "description", MaxDescriptionLength); why != "" {
		return why, nil
	}

	var number int64
	if err := tx.QueryRow(ctx, `INSERT INTO calendar_counters (community_id, last) VALUES ($1, 1)
		ON CONFLICT (community_id) DO UPDATE SET last = calendar_counters.last + 1 RETURNING last`,
		inv.Community.ID).Scan(&number); err != nil {
		return "", fmt.Errorf("calendar: unable to number the event: %w", err)
	}
	target := schemas.TargetOf(&inv.Event)
	// Reminders are new messages to the channel, not answers to this one.
	target.ReplyToID, target.UserID = "", ""
	e := event{communityID: inv.Community.ID, number: number, title: title, description: description, startsAt: start,
		anchorAt: start, recurrence: recurrence, timeZone: loc.String(), state: statePending, target: target,
		createdBy: actions.UserKey(inv), createdByName: inv.Event.User.Name()}
	if autoApproved(inv) {
		e.state, e.decidedBy = stateApproved, actions.UserKey(inv)
	}
	targetDoc, err := json.Marshal(e.target)
	if err != nil {
		return "", fmt.Errorf("calendar: unable to encode the event's channel: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO calendar_events (community_id, number, title, description, starts_at, anchor_at,
		recurrence, time_zone, state, target, created_by, created_by_name, created_at, decided_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		e.communityID, e.number, e.title, e.description, e.startsAt.UTC(), e.anchorAt.UTC(), e.recurrence, e.timeZone, e.state,
		targetDoc, e.createdBy, e.createdByName, now.UTC(), e.decidedBy); err != nil {
		return "", fmt.Errorf("calendar: unable to add the event: %w", err)
	}
	when := formatWhen(start, now, loc)
	if recurrence != "" {
		when += ", " + recurrence
	}
	if e.state == statePending {
		return fmt.Sprintf("Event #%d “%s” (%s) added; it waits for a moderator's approval (%sevent approve %d).",
			number, title, when, actions.CommandPrefix(inv), number), nil
	}
	if err := m.scheduleFromInvocation(ctx, inv, tx, e, now); err != nil {
		return "", err
	}
	return fmt.Sprintf("Event #%d “%s” added for %s. Join with %sevent join %d.", number, title, when, actions.CommandPrefix(inv), number), nil
}

// withEvent reads the event number the subcommand names and runs it on
// the event, locked.
func (m *module) withEvent(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, sub, args string,
	run func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, extra string) (string, error)) (string, error) {
	word, extra := actions.CutWord(args)
	n, ok := parseNumber(word)
	if !ok || (sub != "reject" && sub != "approve" && extra != "") {
		if sub == "" {
			return usage(inv), nil
		}
		reason := ""
		if sub == "reject" || sub == "approve" {
			reason = " [reason]"
		}
		return fmt.Sprintf("Usage: %sevent %s <id>%s (%sevents lists them)", actions.CommandPrefix(inv), sub, reason, actions.CommandPrefix(inv)), nil
	}
	e, found, err := loadEvent(ctx, tx, inv.Community.ID, n)
	if err != nil {
		return "", err
	}
	if !found {
		return fmt.Sprintf("There is no event #%d.", n), nil
	}
	return run(ctx, inv, tx, e, extra)
}

// over: a one-off event whose start has passed is history.
func (e event) over(now time.Time) bool { return e.recurrence == "" && !e.startsAt.After(now) }

func (e event) stateNote() string {
	switch e.state {
	case statePending:
		return "waiting for approval"
	case stateRejected:
		if e.reason != "" {
			return "rejected: " + e.reason
		}
		return "rejected"
	case stateCancelled:
		return "cancelled"
	}
	return ""
}

func (m *module) attendees(ctx context.Context, tx pgx.Tx, e event) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT user_name FROM calendar_attendees WHERE community_id = $1 AND number = $2
		ORDER BY joined_at, user_key`, e.communityID, e.number)
	if err != nil {
		return nil, fmt.Errorf("calendar: unable to list who goes to #%d: %w", e.number, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (m *module) show(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, _ string) (string, error) {
	now := m.clock.Now()
	loc := location(e.timeZone)
	going, err := m.attendees(ctx, tx, e)
	if err != nil {
		return "", err
	}
	head := fmt.Sprintf("#%d “%s” — %s", e.number, e.title, formatWhen(e.startsAt, now, loc))
	if e.recurrence != "" {
		head += ", " + e.recurrence
	}
	if e.over(now) {
		head += " (over)"
	}
	head += " · by " + e.createdByName
	if note := e.stateNote(); note != "" {
		head += " · " + note
	}
	who := fmt.Sprintf(" · %d going", len(going))
	if len(going) > 0 {
		who += ": " + strings.Join(going, ", ")
	}
	desc := ""
	if e.description != "" {
		desc = " · " + e.description
	}
	limit := pageLimit(inv)
	// The names go first when it is too long, then the description is cut.
	if utf8.RuneCountInString(head+who+desc) > limit {
		who = fmt.Sprintf(" · %d going", len(going))
	}
	if room := limit - utf8.RuneCountInString(head+who); desc != "" && utf8.RuneCountInString(desc) > room {
		desc = actions.Clip(desc, max(room, 2))
	}
	return head + who + desc, nil
}

func (m *module) join(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, _ string) (string, error) {
	switch {
	case e.state == statePending:
		return fmt.Sprintf("Event #%d is waiting for a moderator's approval; join it once it is approved.", e.number), nil
	case e.state != stateApproved:
		return fmt.Sprintf("Event #%d is %s.", e.number, e.stateNote()), nil
	case e.over(m.clock.Now()):
		return fmt.Sprintf("Event #%d is over.", e.number), nil
	}
	tag, err := tx.Exec(ctx, `INSERT INTO calendar_attendees (community_id, number, user_key, user_name, joined_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, e.communityID, e.number, actions.UserKey(inv), inv.Event.User.Name(), m.clock.Now().UTC())
	if err != nil {
		return "", fmt.Errorf("calendar: unable to join #%d: %w", e.number, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Sprintf("You are already going to #%d “%s”.", e.number, e.title), nil
	}
	return fmt.Sprintf("%s is going to #%d “%s”.", inv.Event.User.Name(), e.number, e.title), nil
}

func (m *module) leave(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, _ string) (string, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM calendar_attendees WHERE community_id = $1 AND number = $2 AND user_key = $3`,
		e.communityID, e.number, actions.UserKey(inv))
	if err != nil {
		return "", fmt.Errorf("calendar: unable to leave #%d: %w", e.number, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Sprintf("You were not going to #%d.", e.number), nil
	}
	return fmt.Sprintf("%s is no longer going to #%d “%s”.", inv.Event.User.Name(), e.number, e.title), nil
}

func (m *module) approve(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, _ string) (string, error) {
	if !actions.IsModerator(inv) {
		return fmt.Sprintf("Sorry %s, only moderators approve events.", inv.Event.User.Name()), nil
	}
	now := m.clock.Now()
	switch {
	case e.state == stateApproved:
		return fmt.Sprintf("Event #%d is already approved.", e.number), nil
	case e.state != statePending:
		return fmt.Sprintf("Event #%d is %s.", e.number, e.stateNote()), nil
	case !e.startsAt.After(now):
		return fmt.Sprintf("Event #%d's start has passed; it cannot be approved now.", e.number), nil
	}
	if err := m.decide(ctx, tx, e, stateApproved, actions.UserKey(inv), ""); err != nil {
		return "", err
	}
	e.state = stateApproved
	if err := m.scheduleFromInvocation(ctx, inv, tx, e, now); err != nil {
		return "", err
	}
	return fmt.Sprintf("Event #%d “%s” approved: %s. Join with %sevent join %d.", e.number, e.title,
		formatWhen(e.startsAt, now, location(e.timeZone)), actions.CommandPrefix(inv), e.number), nil
}

func (m *module) reject(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, reason string) (string, error) {
	if !actions.IsModerator(inv) {
		return fmt.Sprintf("Sorry %s, only moderators reject events.", inv.Event.User.Name()), nil
	}
	if e.state != statePending {
		return fmt.Sprintf("Event #%d is not waiting for approval; %sevent cancel %d cancels it.", e.number, actions.CommandPrefix(inv), e.number), nil
	}
	if why := checkText(reason, "reason", MaxReasonLength); why != "" {
		return why, nil
	}
	if err := m.decide(ctx, tx, e, stateRejected, actions.UserKey(inv), reason); err != nil {
		return "", err
	}
	if err := m.unschedule(ctx, tx, e); err != nil {
		return "", err
	}
	text := fmt.Sprintf("Event #%d “%s” rejected", e.number, e.title)
	if reason != "" {
		text += ": " + reason
	}
	return text + ".", nil
}

func (m *module) cancel(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, _ string) (string, error) {
	if e.createdBy != actions.UserKey(inv) && !actions.IsModerator(inv) {
		return fmt.Sprintf("Event #%d is %s's; only they or a moderator can cancel it.", e.number, e.createdByName), nil
	}
	if e.state == stateCancelled || e.state == stateRejected {
		return fmt.Sprintf("Event #%d is already %s.", e.number, e.state), nil
	}
	if err := m.decide(ctx, tx, e, stateCancelled, actions.UserKey(inv), ""); err != nil {
		return "", err
	}
	if err := m.unschedule(ctx, tx, e); err != nil {
		return "", err
	}
	return fmt.Sprintf("Event #%d “%s” cancelled.", e.number, e.title), nil
}

func (m *module) decide(ctx context.Context, tx pgx.Tx, e event, state, by, reason string) error {
	if _, err := tx.Exec(ctx, `UPDATE calendar_events SET state = $3, decided_by = $4, reason = $5
		WHERE community_id = $1 AND number = $2`, e.communityID, e.number, state, by, reason); err != nil {
		return fmt.Errorf("calendar: unable to mark #%d %s: %w", e.number, state, err)
	}
	return nil
}

func (m *module) listEvents(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	p := actions.CommandPrefix(inv)
	page := 1
	if arg := strings.TrimSpace(inv.ArgText); arg != "" {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 {
			return fmt.Sprintf("Usage: %sevents [page]", p), nil
		}
		page = n
	}
	// Moderators see what waits for them among the rest.
	states := []string{stateApproved}
	if actions.IsModerator(inv) {
		states = append(states, statePending)
	}
	now := m.clock.Now()
	rows, err := tx.Query(ctx, `SELECT `+eventColumns+` FROM calendar_events
		WHERE community_id = $1 AND state = ANY($2) AND starts_at > $3 ORDER BY starts_at, number`,
		inv.Community.ID, states, now.UTC())
	if err != nil {
		return "", fmt.Errorf("calendar: unable to list events: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event, error) { return scanEvent(r) })
	if err != nil {
		return "", fmt.Errorf("calendar: unable to list events: %w", err)
	}
	items := make([]string, 0, len(events))
	for _, e := range events {
		item := fmt.Sprintf("#%d %s — %s", e.number, actions.Clip(e.title, 60), formatWhen(e.startsAt, now, location(e.timeZone)))
		if e.recurrence != "" {
			item += " (" + e.recurrence + ")"
		}
		if e.state == statePending {
			item += " [pending]"
		}
		items = append(items, item)
	}
	text, _ := actions.Listing{
		Header: "Upcoming events:",
		Items:  items,
		Empty:  fmt.Sprintf(`No upcoming events. Add one with %sevent add "<title>" <when>.`, p),
		More:   func(n int) string { return p + "events " + strconv.Itoa(n) },
	}.Page(page, pageLimit(inv))
	return text, nil
}
