package shoutout

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Twitch's own limits on native shoutouts (Helix Send Shoutout: "The
// broadcaster may send a Shoutout once every 2 minutes. They may send the
// same broadcaster a Shoutout once every 60 minutes."). Asking inside them
// only earns a 429 the sender would keep retrying, so the module leaves the
// native shoutout out and keeps the chat message.
const (
	nativePerTarget  = 60 * time.Minute
	nativePerChannel = 2 * time.Minute
)

// record is what shoutout_targets knows about one target in one channel,
// with the channel's own last native shoutout.
type record struct {
	lastAt          *time.Time // the target's last shoutout of any kind
	nativeAt        *time.Time // the target's last native shoutout
	channelNativeAt *time.Time // the channel's last native shoutout, to anyone
}

// coolingDown reports whether the target was shouted out less than cooldown
// before now.
func (r record) coolingDown(now time.Time, cooldown time.Duration) bool {
	return r.lastAt != nil && now.Sub(*r.lastAt) < cooldown
}

// nativeAllowed reports whether Twitch would take a native shoutout now.
func (r record) nativeAllowed(now time.Time) bool {
	return (r.nativeAt == nil || now.Sub(*r.nativeAt) >= nativePerTarget) &&
		(r.channelNativeAt == nil || now.Sub(*r.channelNativeAt) >= nativePerChannel)
}

// lockRecord reads the target's and the channel's rows and locks them until
// the transaction ends, creating them when new: two raids by one raider
// delivered at once are decided one after the other, and the second sees
// the first one's shoutout. The channel's row (the empty target) sorts, and
// so locks, first in every transaction, so two shoutouts never wait for each
// other in a circle.
func lockRecord(ctx context.Context, tx pgx.Tx, community, channel, targetKey string) (record, error) {
	if _, err := tx.Exec(ctx, `
		INSERT INTO shoutout_targets (community_id, channel, target) VALUES ($1, $2, ''), ($1, $2, $3)
		ON CONFLICT (community_id, channel, target) DO NOTHING`, community, channel, targetKey); err != nil {
		return record{}, fmt.Errorf("shoutout: unable to create the shoutout record: %w", err)
	}
	rows, err := tx.Query(ctx, `
		SELECT target, last_at, native_at FROM shoutout_targets
		WHERE community_id = $1 AND channel = $2 AND target IN ('', $3)
		ORDER BY target FOR UPDATE`, community, channel, targetKey)
	if err != nil {
		return record{}, fmt.Errorf("shoutout: unable to lock the shoutout record: %w", err)
	}
	defer rows.Close()
	var r record
	for rows.Next() {
		var key string
		var lastAt, nativeAt *time.Time
		if err := rows.Scan(&key, &lastAt, &nativeAt); err != nil {
			return record{}, fmt.Errorf("shoutout: unable to read the shoutout record: %w", err)
		}
		if key == "" {
			r.channelNativeAt = nativeAt
		} else {
			r.lastAt, r.nativeAt = lastAt, nativeAt
		}
	}
	if err := rows.Err(); err != nil {
		return record{}, fmt.Errorf("shoutout: unable to read the shoutout record: %w", err)
	}
	return r, nil
}

// saveShoutout records a shoutout of the target at now, and a native one
// (for the target and for the channel) when native.
func saveShoutout(ctx context.Context, tx pgx.Tx, community, channel, targetKey, invocationID string, now time.Time, native bool) error {
	if _, err := tx.Exec(ctx, `
		UPDATE shoutout_targets
		SET last_at = CASE WHEN target = '' THEN last_at ELSE $4 END,
		    native_at = CASE WHEN $5 THEN $4 ELSE native_at END,
		    invocation_id = $6
		WHERE community_id = $1 AND channel = $2 AND (target = $3 OR ($5 AND target = ''))`,
		community, channel, targetKey, now.UTC(), native, invocationID); err != nil {
		return fmt.Errorf("shoutout: unable to record the shoutout: %w", err)
	}
	return nil
}

// keepRecords is how long a record matters: past the longest cooldown a
// community may set and Twitch's own limits, a record decides nothing.
const keepRecords = 25 * time.Hour

// pruneRecords deletes records that no longer decide anything.
func pruneRecords(ctx context.Context, pool *pgxpool.Pool, before time.Time) error {
	if _, err := pool.Exec(ctx, `
		DELETE FROM shoutout_targets
		WHERE COALESCE(GREATEST(last_at, native_at) < $1, true)`, before.UTC()); err != nil {
		return fmt.Errorf("shoutout: unable to prune old shoutout records: %w", err)
	}
	return nil
}
