package actions

import (
	"context"
	"time"

	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

const (
	sweepBatch = 100
	// defaultRetention outlives WB_COMMANDS' default MaxAge (24 h): no
	// redelivery can ask for an invocation pruned after it.
	defaultRetention = 25 * time.Hour
	pruneEvery       = time.Hour
	// jobRetention keeps finished jobs for a month.
	jobRetention = 30 * 24 * time.Hour
)

// sweepOutbox republishes results that committed but were never marked sent,
// without waiting for the invocation to come again (after AckWait, or never:
// it may have been dead-lettered after its commit, or published and acked
// with MarkSent failing). It also prunes old outbox rows now and then.
func (w *Worker) sweepOutbox(ctx context.Context) {
	t := time.NewTicker(w.cfg.OutboxSweep)
	defer t.Stop()
	var lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.republishUnsent(ctx)
		if time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			n, err := w.cfg.Store.PruneProcessed(ctx, w.cfg.Module.Manifest.Name, w.cfg.Retention)
			if err != nil {
				w.logStoreTrouble("actions: unable to prune the outbox", err)
			} else if n > 0 {
				w.log.Info("actions: pruned the outbox", "rows", n)
			}
			if w.cfg.Module.Fire != nil {
				// Fired and cancelled jobs are kept a while for `list`-style
				// questions and audits, not forever.
				if n, err := w.cfg.Store.PruneJobs(ctx, w.name, jobRetention); err != nil {
					w.logStoreTrouble("actions: unable to prune finished jobs", err)
				} else if n > 0 {
					w.log.Info("actions: pruned finished jobs", "rows", n)
				}
			}
			if w.cfg.Module.Housekeep != nil {
				if err := w.cfg.Module.Housekeep(ctx); err != nil {
					w.logStoreTrouble("actions: housekeeping failed", err)
				}
			}
		}
	}
}

func (w *Worker) republishUnsent(ctx context.Context) {
	// Younger rows are most likely being published by their own worker now.
	olderThan := 2 * w.cfg.OutboxSweep
	for ctx.Err() == nil {
		unsent, err := w.cfg.Store.Unsent(ctx, w.name, olderThan, sweepBatch)
		if err != nil {
			w.logStoreTrouble("actions: unable to list unsent results", err)
			return
		}
		sent := 0
		for _, u := range unsent {
			if err := w.publish(ctx, u.Messages); err != nil {
				w.log.Warn("actions: unable to republish an unsent result", logging.KeyID, u.InvocationID, logging.Err(err))
				if consume.NATSTrouble(err) {
					return
				}
				// One result NATS refuses must not hold back the others.
				continue
			}
			if err := w.cfg.Store.MarkSent(ctx, u.InvocationID); err != nil {
				w.logStoreTrouble("actions: unable to mark a republished result sent", err)
				return
			}
			sent++
			w.log.Info("actions: republished an unsent result", logging.KeyID, u.InvocationID, "messages", len(u.Messages))
		}
		// A full batch that made no progress would come back unchanged.
		if len(unsent) < sweepBatch || sent == 0 {
			return
		}
	}
}

func (w *Worker) logStoreTrouble(msg string, err error) {
	if store.IsUnavailable(err) {
		// The consume loop already reports PostgreSQL being down.
		w.log.Debug(msg, logging.Err(err))
		return
	}
	w.log.Warn(msg, logging.Err(err))
}
