package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/schemas"
)

// Job states.
const (
	JobPending   = "pending"
	JobFired     = "fired"
	JobCancelled = "cancelled"
	JobFailed    = "failed"
)

// Job is work a module does at a time: a reminder, an event's reminder.
type Job struct {
	ID          string
	Module      string
	CommunityID string
	// Kind tells a module's jobs apart ("reminder", "event-reminder").
	Kind  string
	DueAt time.Time
	// Target is where the firing's replies go.
	Target    schemas.Target
	Payload   json.RawMessage
	CreatedBy string
	State     string
	FiredAt   *time.Time
	Late      bool
	Attempts  int
	CreatedAt time.Time
}

const jobColumns = `id::text, module, community_id::text, kind, due_at, target, payload, created_by, state, fired_at, late, attempts, created_at`

func scanJob(r pgx.Row) (Job, error) {
	var j Job
	var target []byte
	err := r.Scan(&j.ID, &j.Module, &j.CommunityID, &j.Kind, &j.DueAt, &target, &j.Payload, &j.CreatedBy,
		&j.State, &j.FiredAt, &j.Late, &j.Attempts, &j.CreatedAt)
	if err != nil {
		return j, err
	}
	if err := json.Unmarshal(target, &j.Target); err != nil {
		return j, fmt.Errorf("store: job %s target unreadable: %w", j.ID, err)
	}
	return j, nil
}

// JobTime is a due time as PostgreSQL keeps it (microseconds): firing ids
// are derived from the stored time, so callers that compute one from a
// time in memory must round it the same way.
func JobTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ScheduleJob adds a job inside q (a module's outbox transaction). The id is
// the caller's, deterministic from its invocation, so a retry adds nothing.
func (s *Store) ScheduleJob(ctx context.Context, q Querier, j Job) error {
	target, err := json.Marshal(j.Target)
	if err != nil {
		return fmt.Errorf("store: unable to encode job target: %w", err)
	}
	payload := j.Payload
	if len(payload) == 0 {
		payload = json.RawMessage(`{}`)
	}
	if _, err := q.Exec(ctx, `
		INSERT INTO scheduled_jobs (id, module, community_id, kind, due_at, target, payload, created_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
		j.ID, j.Module, j.CommunityID, j.Kind, JobTime(j.DueAt), target, []byte(payload), j.CreatedBy); err != nil {
		return checkViolation(err, "job")
	}
	return nil
}

// PendingJobs lists a module's pending jobs of one kind in a community,
// soonest first; createdBy, when not empty, keeps only that user's.
func (s *Store) PendingJobs(ctx context.Context, q Querier, communityID, module, kind, createdBy string) ([]Job, error) {
	if q == nil {
		q = s.pool
	}
	rows, err := q.Query(ctx, `SELECT `+jobColumns+` FROM scheduled_jobs
		WHERE community_id = $1 AND module = $2 AND kind = $3 AND state = 'pending' AND ($4 = '' OR created_by = $4)
		ORDER BY due_at, id`, communityID, module, kind, createdBy)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list jobs: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) { return scanJob(r) })
}

// Job reads one job of a community.
func (s *Store) Job(ctx context.Context, q Querier, communityID, id string) (Job, error) {
	if q == nil {
		q = s.pool
	}
	j, err := scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM scheduled_jobs WHERE community_id = $1 AND id = $2`, communityID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Job{}, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	if err != nil {
		return Job{}, fmt.Errorf("store: unable to read job: %w", err)
	}
	return j, nil
}

// CancelJob cancels a pending job; a job that is not pending is ErrNotFound.
func (s *Store) CancelJob(ctx context.Context, q Querier, communityID, id string) error {
	tag, err := q.Exec(ctx, `UPDATE scheduled_jobs SET state = 'cancelled' WHERE community_id = $1 AND id = $2 AND state = 'pending'`,
		communityID, id)
	if err != nil {
		return fmt.Errorf("store: unable to cancel job: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: pending job %s", ErrNotFound, id)
	}
	return nil
}

// FireWork is a module's firing of one job, inside tx. It returns the
// messages to publish and, for recurring work, when the job is due next
// (nil: done).
type FireWork func(ctx context.Context, tx pgx.Tx, job Job, firingID string, late bool) ([]OutMessage, *time.Time, error)

// Fired is one job fired by FireNextDue.
type Fired struct {
	Job      Job
	FiringID string
	Late     bool
	Messages []OutMessage
}

// ErrNoneDue means no job of the module is due.
var ErrNoneDue = errors.New("store: no job due")

// FireNextDue claims the module's next job due at now, with a row lock that
// other replicas skip, runs work, and commits the firing's messages to the
// outbox (under the firing id) together with the job's new state, so a job
// fires once however many replicas poll. A job more than lateAfter overdue
// fires marked late. ErrNoneDue when nothing is due.
func (s *Store) FireNextDue(ctx context.Context, module string, now time.Time, lateAfter time.Duration, work FireWork) (Fired, error) {
	tx, done, err := s.beginWork(ctx)
	if err != nil {
		return Fired{}, err
	}
	defer done()
	defer tx.Rollback(ctx)
	job, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobColumns+` FROM scheduled_jobs
		WHERE module = $1 AND state = 'pending' AND due_at <= $2 AND (not_before IS NULL OR not_before <= $2)
		ORDER BY due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`, module, now.UTC()))
	if errors.Is(err, pgx.ErrNoRows) {
		return Fired{}, ErrNoneDue
	}
	if err != nil {
		return Fired{}, fmt.Errorf("store: unable to claim a due job: %w", err)
	}
	firingID := schemas.FiringID(job.ID, job.DueAt)
	late := now.Sub(job.DueAt) > lateAfter
	msgs, next, err := work(ctx, tx, job, firingID, late)
	if err != nil {
		return Fired{Job: job, FiringID: firingID}, err
	}
	doc, err := json.Marshal(msgs)
	if err != nil {
		return Fired{}, fmt.Errorf("store: unable to encode firing messages: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO processed_invocations (invocation_id, module, community_id, messages, committed_at)
		VALUES ($1, $2, $3, $4, $5)`, firingID, module, job.CommunityID, string(doc), time.Now().UTC()); err != nil {
		return Fired{}, fmt.Errorf("store: unable to record firing: %w", err)
	}
	if next != nil {
		_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET due_at = $2, late = $3, fired_at = $4, attempts = 0, not_before = NULL WHERE id = $1`,
			job.ID, next.UTC(), late, now.UTC())
	} else {
		_, err = tx.Exec(ctx, `UPDATE scheduled_jobs SET state = 'fired', late = $2, fired_at = $3 WHERE id = $1`, job.ID, late, now.UTC())
	}
	if err != nil {
		return Fired{}, fmt.Errorf("store: unable to update fired job: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Fired{}, fmt.Errorf("store: unable to commit firing: %w", err)
	}
	return Fired{Job: job, FiringID: firingID, Late: late, Messages: msgs}, nil
}

// JobFailed records a failed firing: retried from notBefore, or given up
// (state failed) once attempts reaches maxAttempts. It reports whether the
// job was given up.
func (s *Store) JobFailed(ctx context.Context, id string, cause error, notBefore time.Time, maxAttempts int) (bool, error) {
	var state string
	err := s.pool.QueryRow(ctx, `UPDATE scheduled_jobs SET attempts = attempts + 1, last_error = $2, not_before = $3,
		state = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE state END
		WHERE id = $1 AND state = 'pending' RETURNING state`, id, cause.Error(), notBefore.UTC(), maxAttempts).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: unable to record a failed firing: %w", err)
	}
	return state == JobFailed, nil
}

// NextDue is when the module's next pending job is due (ok false: none).
func (s *Store) NextDue(ctx context.Context, module string) (time.Time, bool, error) {
	var due *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(greatest(due_at, coalesce(not_before, due_at))) FROM scheduled_jobs
		WHERE module = $1 AND state = 'pending'`, module).Scan(&due); err != nil {
		return time.Time{}, false, fmt.Errorf("store: unable to read the next due job: %w", err)
	}
	if due == nil {
		return time.Time{}, false, nil
	}
	return *due, true, nil
}

// PruneJobs deletes a module's fired, cancelled and failed jobs finished
// (or created, for cancelled ones) more than age ago.
func (s *Store) PruneJobs(ctx context.Context, module string, age time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM scheduled_jobs WHERE module = $1 AND state <> 'pending'
		AND coalesce(fired_at, created_at) < now() - $2::interval`, module, age.String())
	if err != nil {
		return 0, fmt.Errorf("store: unable to prune jobs: %w", err)
	}
	return tag.RowsAffected(), nil
}
