package ai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/store"
)

// budgets holds the request windows (shared by replicas through KV, with
// the router's sliding-window code), the once-per-window notices, and the
// daily token budget in PostgreSQL.
type budgets struct {
	windows *coord.Windows
	notices *coord.Cooldowns
	st      *store.Store
	now     func() time.Time
}

// verdict is the outcome of a budget check.
type verdict struct {
	ok bool
	// notify is set when this is the first refusal in its window: the one
	// polite reply; later refusals in the window stay silent.
	notify bool
	reason string
}

func hashKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// request checks one request against a window; a refusal takes the
// window's notice, which the first refusal gets.
func (b *budgets) request(ctx context.Context, key, id string, limit int, window time.Duration, reason string) (verdict, error) {
	d, err := b.windows.Allow(ctx, "ai."+key, id, limit, window)
	if err != nil {
		return verdict{}, err
	}
	if d.Allowed {
		return verdict{ok: true}, nil
	}
	// The notice lasts until the window frees a slot: one per window.
	first, err := b.notices.Take(ctx, "ai.notice."+key, id, max(d.RetryAfter, time.Second))
	if err != nil {
		return verdict{}, err
	}
	return verdict{notify: first, reason: reason}, nil
}

// day is the UTC date budgets count in.
func (b *budgets) day() time.Time {
	n := b.now().UTC()
	return time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
}

// tokens checks a community's daily token budget (0: none).
func (b *budgets) tokens(ctx context.Context, communityID, id string, budget int) (verdict, error) {
	if budget <= 0 || b.st == nil {
		return verdict{ok: true}, nil
	}
	var used int64
	day := b.day()
	err := b.st.Pool().QueryRow(ctx, `SELECT coalesce(sum(tokens), 0) FROM ai_usage WHERE community_id = $1 AND day = $2`,
		communityID, day).Scan(&used)
	if err != nil {
		return verdict{}, fmt.Errorf("ai: unable to read token usage: %w", err)
	}
	if used < int64(budget) {
		return verdict{ok: true}, nil
	}
	untilTomorrow := day.Add(24 * time.Hour).Sub(b.now())
	first, err := b.notices.Take(ctx, "ai.notice.tokens."+communityID, id, max(untilTomorrow, time.Second))
	if err != nil {
		return verdict{}, err
	}
	return verdict{notify: first, reason: "tokens"}, nil
}

// record stores what an answer cost; a redelivery records nothing more.
func (b *budgets) record(ctx context.Context, invocationID, communityID string, tokens int) error {
	if b.st == nil {
		return nil
	}
	day := b.day()
	_, err := b.st.Pool().Exec(ctx, `INSERT INTO ai_usage (invocation_id, community_id, day, tokens) VALUES ($1, $2, $3, $4)
		ON CONFLICT (invocation_id) DO NOTHING`, invocationID, communityID, day, max(tokens, 0))
	if err != nil {
		return fmt.Errorf("ai: unable to record token usage: %w", err)
	}
	// Budgets are daily: a week of rows is plenty for an operator's look.
	if _, err := b.st.Pool().Exec(ctx, `DELETE FROM ai_usage WHERE day < $1`, day.AddDate(0, 0, -7)); err != nil {
		return fmt.Errorf("ai: unable to prune token usage: %w", err)
	}
	return nil
}
