package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// OutMessage is one message an invocation's result publishes.
type OutMessage struct {
	Subject string          `json:"subject"`
	MsgID   string          `json:"msg_id"`
	Data    json.RawMessage `json:"data"`
}

// Work is a module's part of an invocation: its writes, in tx, and the
// messages its result publishes.
type Work func(ctx context.Context, tx pgx.Tx) ([]OutMessage, error)

// RunOnce runs work for an invocation exactly once. It commits the work's
// writes together with the invocation id and the messages to publish. When
// the invocation was committed before (a redelivery after a crash, a second
// replica that got the message after AckWait), it returns the stored
// messages with replayed set, without running work: the caller publishes
// them again under the same ids and the duplicate window drops the copies.
// A concurrent run of the same invocation waits on the row lock and then
// takes the replay path.
func (s *Store) RunOnce(ctx context.Context, invocationID, module, communityID string, work Work) (msgs []OutMessage, replayed bool, err error) {
	tx, done, err := s.beginWork(ctx)
	if err != nil {
		return nil, false, err
	}
	defer done()
	defer tx.Rollback(ctx)
	var community any
	if communityID != "" {
		community = communityID
	}
	tag, err := tx.Exec(ctx, `INSERT INTO processed_invocations (invocation_id, module, community_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		invocationID, module, community)
	if err != nil {
		return nil, false, fmt.Errorf("store: unable to claim invocation: %w", err)
	}
	if tag.RowsAffected() == 0 {
		tx.Rollback(ctx)
		msgs, err := s.storedMessages(ctx, invocationID)
		return msgs, true, err
	}
	msgs, err = work(ctx, tx)
	if err != nil {
		return nil, false, err
	}
	doc, err := json.Marshal(msgs)
	if err != nil {
		return nil, false, fmt.Errorf("store: unable to encode outbox messages: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE processed_invocations SET messages = $2 WHERE invocation_id = $1`, invocationID, string(doc)); err != nil {
		return nil, false, fmt.Errorf("store: unable to record outbox messages: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, false, fmt.Errorf("store: unable to commit invocation: %w", err)
	}
	return msgs, false, nil
}

func (s *Store) storedMessages(ctx context.Context, invocationID string) ([]OutMessage, error) {
	var doc []byte
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(messages::text, '[]') FROM processed_invocations WHERE invocation_id = $1`,
		invocationID).Scan(&doc); err != nil {
		return nil, fmt.Errorf("store: unable to read stored result: %w", err)
	}
	var msgs []OutMessage
	if err := json.Unmarshal(doc, &msgs); err != nil {
		return nil, fmt.Errorf("store: stored result unreadable: %w", err)
	}
	return msgs, nil
}

// MarkSent records that an invocation's messages reached JetStream.
func (s *Store) MarkSent(ctx context.Context, invocationID string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE processed_invocations SET sent_at = now() WHERE invocation_id = $1 AND sent_at IS NULL`, invocationID); err != nil {
		return fmt.Errorf("store: unable to mark invocation sent: %w", err)
	}
	return nil
}

// Unsent is a committed invocation whose messages may not have been published.
type Unsent struct {
	InvocationID string
	Messages     []OutMessage
}

// Unsent lists a module's invocations committed at least olderThan ago and
// never marked sent: the sweeper republishes them. Replicas sweeping at the
// same time may republish the same rows; the ids make the copies harmless.
func (s *Store) Unsent(ctx context.Context, module string, olderThan time.Duration, limit int) ([]Unsent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT invocation_id::text, coalesce(messages::text, '[]') FROM processed_invocations
		WHERE module = $1 AND sent_at IS NULL AND committed_at < now() - $2::interval
		ORDER BY committed_at LIMIT $3`, module, olderThan.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list unsent results: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Unsent, error) {
		var u Unsent
		var doc []byte
		if err := r.Scan(&u.InvocationID, &doc); err != nil {
			return u, err
		}
		if err := json.Unmarshal(doc, &u.Messages); err != nil {
			return u, fmt.Errorf("store: stored result unreadable: %w", err)
		}
		return u, nil
	})
}

// PruneProcessed deletes a module's sent invocations older than age: past
// the commands stream's MaxAge no redelivery can ask for them.
func (s *Store) PruneProcessed(ctx context.Context, module string, age time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM processed_invocations WHERE module = $1 AND sent_at IS NOT NULL AND committed_at < now() - $2::interval`, module, age.String())
	if err != nil {
		return 0, fmt.Errorf("store: unable to prune processed invocations: %w", err)
	}
	return tag.RowsAffected(), nil
}
