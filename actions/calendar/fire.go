package calendar

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Kinds of the module's scheduled jobs.
const (
	// ReminderKind posts "starts in 1 hour" to the event's channel.
	ReminderKind = "event-reminder"
	// RolloverKind fires when a recurring event starts, moves it on to its
	// next occurrence and schedules that one's reminders; it recurs itself.
	RolloverKind = "event-rollover"
)

// reminderOffset is how long before the start a reminder is posted, and
// how the reminder says it.
type reminderOffset struct {
	before time.Duration
	says   string
}

// Offsets are when reminders go out; job numbers follow their order (1–3;
// 4 is the rollover).
var Offsets = []reminderOffset{
	{24 * time.Hour, "1 day"},
	{time.Hour, "1 hour"},
	{15 * time.Minute, "15 minutes"},
}

// jobPayload is both kinds' payload.
type jobPayload struct {
	Event int64 `json:"event"`
	// Start is the occurrence a reminder is for: one for an occurrence the
	// event has moved past posts nothing.
	Start  time.Time `json:"start,omitempty"`
	Offset int       `json:"offset,omitempty"` // index into Offsets
	// Prefix is the community's command prefix when it was scheduled, for
	// the "join with !event join 3" hint.
	Prefix string `json:"prefix"`
}

// plan lists the jobs one occurrence needs: its reminders whose time is
// still ahead, and, when rollover is asked for, the job at the start that
// moves a recurring event on.
func plan(e event, now time.Time, prefix string, rollover bool) ([]store.Job, error) {
	var jobs []store.Job
	for i, off := range Offsets {
		due := e.startsAt.Add(-off.before)
		if !due.After(now) {
			continue
		}
		payload, err := json.Marshal(jobPayload{Event: e.number, Start: store.JobTime(e.startsAt), Offset: i, Prefix: prefix})
		if err != nil {
			return nil, fmt.Errorf("calendar: unable to encode a reminder: %w", err)
		}
		jobs = append(jobs, store.Job{Kind: ReminderKind, DueAt: due, Payload: payload, Target: e.target, CreatedBy: e.createdBy})
	}
	if rollover && e.recurrence != "" {
		payload, err := json.Marshal(jobPayload{Event: e.number, Prefix: prefix})
		if err != nil {
			return nil, fmt.Errorf("calendar: unable to encode a rollover: %w", err)
		}
		jobs = append(jobs, store.Job{Kind: RolloverKind, DueAt: e.startsAt, Payload: payload, Target: e.target, CreatedBy: e.createdBy})
	}
	return jobs, nil
}

// scheduleFromInvocation schedules an approved event's jobs in the
// handler's transaction, with ids derived from the invocation.
func (m *module) scheduleFromInvocation(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, e event, now time.Time) error {
	jobs, err := plan(e, now, actions.CommandPrefix(inv), true)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		if _, err := actions.Schedule(ctx, m.st, tx, inv, i+1, j); err != nil {
			return fmt.Errorf("calendar: unable to schedule #%d's reminders: %w", e.number, err)
		}
	}
	return nil
}

// unschedule cancels an event's pending jobs. Firings check the event's
// state too, so one already claimed by a replica posts nothing.
func (m *module) unschedule(ctx context.Context, tx pgx.Tx, e event) error {
	for _, kind := range []string{ReminderKind, RolloverKind} {
		jobs, err := m.st.PendingJobs(ctx, tx, e.communityID, Name, kind, "")
		if err != nil {
			return fmt.Errorf("calendar: unable to find #%d's reminders: %w", e.number, err)
		}
		for _, j := range jobs {
			var p jobPayload
			if err := json.Unmarshal(j.Payload, &p); err != nil || p.Event != e.number {
				continue
			}
			if err := m.st.CancelJob(ctx, tx, e.communityID, j.ID); err != nil {
				return fmt.Errorf("calendar: unable to cancel #%d's reminder: %w", e.number, err)
			}
		}
	}
	return nil
}

// fire runs a job that came due.
func (m *module) fire(ctx context.Context, job *store.Job, _ bool, tx pgx.Tx) (*schemas.Result, *time.Time, error) {
	var p jobPayload
	if err := json.Unmarshal(job.Payload, &p); err != nil {
		return nil, nil, fmt.Errorf("calendar: job %s has an unreadable payload: %w", job.ID, err)
	}
	e, found, err := loadEvent(ctx, tx, job.CommunityID, p.Event)
	if err != nil {
		return nil, nil, err
	}
	if !found || e.state != stateApproved {
		return nil, nil, nil
	}
	now := m.clock.Now()
	switch job.Kind {
	case ReminderKind:
		return m.remind(ctx, tx, e, p, now)
	case RolloverKind:
		return m.rollover(ctx, tx, job, e, p, now)
	}
	return nil, nil, fmt.Errorf("calendar: job %s has unknown kind %q", job.ID, job.Kind)
}

func (m *module) remind(ctx context.Context, tx pgx.Tx, e event, p jobPayload, now time.Time) (*schemas.Result, *time.Time, error) {
	// A reminder for an occurrence the event has moved past, or one so
	// late the event has begun, would mislead.
	if !store.JobTime(e.startsAt).Equal(p.Start) || !e.startsAt.After(now) || p.Offset < 0 || p.Offset >= len(Offsets) {
		return nil, nil, nil
	}
	// Posted late (no worker ran in time), a reminder whose next one is
	// due already would say the wrong thing: the next one speaks instead.
	if p.Offset+1 < len(Offsets) && !now.Before(e.startsAt.Add(-Offsets[p.Offset+1].before)) {
		return nil, nil, nil
	}
	going, err := m.attendees(ctx, tx, e)
	if err != nil {
		return nil, nil, err
	}
	if p.Prefix == "" {
		p.Prefix = "!"
	}
	loc := location(e.timeZone)
	text := fmt.Sprintf("📅 “%s” (#%d) starts in %s, at %s. %d going; join with %sevent join %d.",
		e.title, e.number, Offsets[p.Offset].says, e.startsAt.In(loc).Format("15:04 MST"), len(going), p.Prefix, e.number)
	return &schemas.Result{Version: schemas.Version, Module: Name,
		Replies: []schemas.ReplyText{{Text: text, Visibility: schemas.VisibilityPublic}}}, nil, nil
}

// rollover moves a recurring event on to its next occurrence still ahead
// (occurrences missed while no worker ran are skipped), schedules its
// reminders, and comes back at its start.
func (m *module) rollover(ctx context.Context, tx pgx.Tx, job *store.Job, e event, p jobPayload, now time.Time) (*schemas.Result, *time.Time, error) {
	loc := location(e.timeZone)
	k := e.occurrence + 1
	next := occurrenceAt(e.anchorAt, k, e.recurrence, loc)
	for !next.After(now) {
		k++
		next = occurrenceAt(e.anchorAt, k, e.recurrence, loc)
	}
	if _, err := tx.Exec(ctx, `UPDATE calendar_events SET starts_at = $3, occurrence = $4 WHERE community_id = $1 AND number = $2`,
		e.communityID, e.number, next.UTC(), k); err != nil {
		return nil, nil, fmt.Errorf("calendar: unable to move #%d on: %w", e.number, err)
	}
	e.startsAt, e.occurrence = next, k
	jobs, err := plan(e, now, p.Prefix, false)
	if err != nil {
		return nil, nil, err
	}
	// Ids derive from this firing, so a retried firing schedules nothing twice.
	firing := schemas.FiringID(job.ID, job.DueAt)
	for i, j := range jobs {
		j.ID = schemas.JobID(firing, i+1)
		j.Module, j.CommunityID = Name, e.communityID
		if err := m.st.ScheduleJob(ctx, tx, j); err != nil {
			return nil, nil, fmt.Errorf("calendar: unable to schedule #%d's next reminders: %w", e.number, err)
		}
	}
	due := store.JobTime(next)
	return nil, &due, nil
}
