package actions

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

const (
	sweepBatch = 100
	// processedRetention outlives WB_COMMANDS' MaxAge (24 h): no redelivery
	// can ask for an invocation pruned after it.
	processedRetention = 25 * time.Hour
	pruneEvery         = time.Hour
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
			n, err := w.cfg.Store.PruneProcessed(ctx, w.cfg.Module.Manifest.Name, processedRetention)
			if err != nil {
				w.logStoreTrouble("actions: unable to prune the outbox", err)
			} else if n > 0 {
				w.log.Info("actions: pruned the outbox", "rows", n)
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
				if natsDown(err) {
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

// natsDown tells NATS being unreachable or slow (the same errors the consume
// loop retries without counting) from NATS refusing one message.
func natsDown(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionDraining) ||
		errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, context.DeadlineExceeded)
}
