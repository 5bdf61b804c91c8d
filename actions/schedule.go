package actions

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// FireHandler runs one of the module's scheduled jobs now due, inside tx
// (its writes commit with the firing). late says the job fired more than
// Config.LateAfter after its due time, because no worker ran then. The
// result's replies go to the job's target. For recurring work it returns
// when the job is due next; nil ends the job.
type FireHandler func(ctx context.Context, job *store.Job, late bool, tx pgx.Tx) (*schemas.Result, *time.Time, error)

// Schedule adds job n (from 1) of an invocation inside the handler's
// transaction: it commits with the invocation, and its id is derived from
// the invocation's, so a retry never schedules twice.
func Schedule(ctx context.Context, st *store.Store, tx pgx.Tx, inv *schemas.Invocation, n int, job store.Job) (store.Job, error) {
	job.ID = schemas.JobID(inv.ID, n)
	job.DueAt = store.JobTime(job.DueAt)
	job.Module = inv.Module
	job.CommunityID = inv.Community.ID
	if job.Target.Platform == "" {
		job.Target = schemas.TargetOf(&inv.Event)
	}
	if job.CreatedBy == "" {
		job.CreatedBy = UserKey(inv)
	}
	return job, st.ScheduleJob(ctx, tx, job)
}

func (w *Worker) wakeScheduler() {
	if w.cfg.Module.Fire == nil {
		return
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// runScheduler fires the module's due jobs until ctx ends. It sleeps until
// the next job is due on the worker's clock, at most SchedulePoll of real
// time (so jobs other replicas add, and a moved test clock, are seen), and
// wakes early when this worker's handler scheduled something.
func (w *Worker) runScheduler(ctx context.Context) {
	poll := time.NewTicker(w.cfg.SchedulePoll)
	defer poll.Stop()
	for ctx.Err() == nil {
		w.fireDue(ctx)
		wait := w.cfg.SchedulePoll
		if next, ok, err := w.cfg.Store.NextDue(ctx, w.name); err == nil && ok {
			wait = min(wait, max(next.Sub(w.cfg.Clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-w.cfg.Clock.After(wait):
		case <-poll.C:
		case <-w.wake:
		}
	}
}

// fireDue fires every job due now, one transaction each.
func (w *Worker) fireDue(ctx context.Context) {
	for ctx.Err() == nil {
		now := w.cfg.Clock.Now()
		fired, err := w.cfg.Store.FireNextDue(ctx, w.name, now, w.cfg.LateAfter,
			func(ctx context.Context, tx pgx.Tx, job store.Job, firingID string, late bool) ([]store.OutMessage, *time.Time, error) {
				hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
				defer cancel()
				res, next, err := w.callFire(hctx, &job, late, tx)
				if err != nil {
					return nil, nil, err
				}
				msgs, err := outbound(origin{ID: firingID, Module: w.name, Target: job.Target, CommunityID: job.CommunityID}, res, time.Now())
				return msgs, next, err
			})
		switch {
		case errors.Is(err, store.ErrNoneDue):
			return
		case err != nil && store.IsUnavailable(err):
			w.log.Warn("actions: PostgreSQL unavailable; scheduled jobs wait", logging.Err(err))
			return
		case err != nil:
			w.jobFailed(ctx, fired.Job, err)
			continue
		}
		if err := w.publish(ctx, fired.Messages); err != nil {
			// Committed: the sweeper publishes it once NATS answers.
			w.log.Warn("actions: unable to publish a firing; the sweeper will", logging.KeyID, fired.FiringID, logging.Err(err))
			continue
		}
		if err := w.cfg.Store.MarkSent(ctx, fired.FiringID); err != nil {
			w.log.Warn("actions: unable to mark a firing sent", logging.KeyID, fired.FiringID, logging.Err(err))
		}
		metrics.StageLatency.WithLabelValues("schedule_lag").Observe(w.cfg.Clock.Now().Sub(fired.Job.DueAt).Seconds())
		if fired.Late {
			w.log.Info("actions: fired a job late", logging.KeyID, fired.Job.ID, "due", fired.Job.DueAt)
		}
	}
}

func (w *Worker) callFire(ctx context.Context, job *store.Job, late bool, tx pgx.Tx) (res *schemas.Result, next *time.Time, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New("actions: scheduled job handler panicked")
			w.log.Error("actions: scheduled job handler panicked", "panic", r, logging.KeyID, job.ID)
		}
	}()
	return w.cfg.Module.Fire(ctx, job, late, tx)
}

// jobFailed puts a failed firing off with back-off, and gives the job up
// after JobAttempts.
func (w *Worker) jobFailed(ctx context.Context, job store.Job, cause error) {
	if job.ID == "" {
		w.log.Warn("actions: unable to fire scheduled jobs", logging.Err(cause))
		return
	}
	delay := time.Duration(1<<min(job.Attempts, 8)) * time.Second
	gaveUp, err := w.cfg.Store.JobFailed(ctx, job.ID, cause, w.cfg.Clock.Now().Add(delay), w.cfg.JobAttempts)
	if err != nil {
		w.log.Warn("actions: unable to record a failed firing", logging.KeyID, job.ID, logging.Err(err))
		return
	}
	if gaveUp {
		w.log.Error("actions: scheduled job gave up after repeated failures", logging.KeyID, job.ID, "attempts", job.Attempts+1, logging.Err(cause))
		return
	}
	w.log.Warn("actions: scheduled job failed; will retry", logging.KeyID, job.ID, "retry_in", delay, logging.Err(cause))
}
