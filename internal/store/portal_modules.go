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

// The portal's writes to module choices, command overrides, quotes and
// reputation reads. Each change reads the row it replaces in the same
// transaction, so the audit entry's before is what the change replaced.

// ChangeModule sets a community's choice for a module (settings nil keeps
// the current settings), audited as module.set with before and after.
func (s *Store) ChangeModule(ctx context.Context, actor, communityID, module string, enabled bool, settings json.RawMessage, details map[string]any) error {
	if settings != nil && !json.Valid(settings) {
		return fmt.Errorf("%w: module settings are not JSON", schemas.ErrInvalid)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		before, err := moduleChoice(ctx, tx, communityID, module)
		if err != nil {
			return err
		}
		after := ModuleChoice{Enabled: enabled, Settings: settings}
		if settings == nil {
			if before != nil {
				after.Settings = before.Settings
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO community_modules (community_id, module, enabled) VALUES ($1, $2, $3)
				ON CONFLICT (community_id, module) DO UPDATE SET enabled = EXCLUDED.enabled, updated_at = now()`,
				communityID, module, enabled)
		} else {
			_, err = tx.Exec(ctx, `
				INSERT INTO community_modules (community_id, module, enabled, settings) VALUES ($1, $2, $3, $4)
				ON CONFLICT (community_id, module) DO UPDATE SET enabled = EXCLUDED.enabled, settings = EXCLUDED.settings, updated_at = now()`,
				communityID, module, enabled, []byte(settings))
		}
		if err != nil {
			return checkViolation(err, "community module")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "module.set", Target: module,
			Details: withBeforeAfter(details, choiceDetail(before), choiceDetail(&after))})
	})
}

func moduleChoice(ctx context.Context, tx pgx.Tx, communityID, module string) (*ModuleChoice, error) {
	var c ModuleChoice
	var settings []byte
	err := tx.QueryRow(ctx, `SELECT enabled, settings FROM community_modules WHERE community_id = $1 AND module = $2 FOR UPDATE`,
		communityID, module).Scan(&c.Enabled, &settings)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: unable to read community module: %w", err)
	}
	c.Settings = settings
	return &c, nil
}

// choiceDetail is a choice as the audit log shows it; nil (no choice yet,
// the manifest's default) stays nil.
func choiceDetail(c *ModuleChoice) any {
	if c == nil {
		return nil
	}
	d := map[string]any{"enabled": c.Enabled}
	if len(c.Settings) > 0 {
		d["settings"] = json.RawMessage(c.Settings)
	}
	return d
}

// ChangeCommandOverride writes (o non-nil) or removes (o nil: back to the
// module's defaults) a community's override for a command, audited with
// before and after.
func (s *Store) ChangeCommandOverride(ctx context.Context, actor, communityID, command string, o *CommandOverride, details map[string]any) error {
	if o != nil && o.Permission != nil && !schemas.ValidPermission(*o.Permission) {
		return fmt.Errorf("%w: permission %q unknown", schemas.ErrInvalid, *o.Permission)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var before CommandOverride
		had := true
		err := tx.QueryRow(ctx, `SELECT enabled, permission, global_cooldown_ms, user_cooldown_ms FROM command_overrides
			WHERE community_id = $1 AND command = $2 FOR UPDATE`, communityID, command).
			Scan(&before.Enabled, &before.Permission, &before.GlobalCooldownMS, &before.UserCooldownMS)
		if errors.Is(err, pgx.ErrNoRows) {
			had = false
		} else if err != nil {
			return fmt.Errorf("store: unable to read command override: %w", err)
		}
		action := "command.override"
		if o == nil {
			action = "command.reset"
			if _, err := tx.Exec(ctx, `DELETE FROM command_overrides WHERE community_id = $1 AND command = $2`, communityID, command); err != nil {
				return fmt.Errorf("store: unable to remove command override: %w", err)
			}
		} else if _, err := tx.Exec(ctx, `
			INSERT INTO command_overrides (community_id, command, enabled, permission, global_cooldown_ms, user_cooldown_ms)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (community_id, command) DO UPDATE SET enabled = EXCLUDED.enabled, permission = EXCLUDED.permission,
				global_cooldown_ms = EXCLUDED.global_cooldown_ms, user_cooldown_ms = EXCLUDED.user_cooldown_ms, updated_at = now()`,
			communityID, command, o.Enabled, o.Permission, o.GlobalCooldownMS, o.UserCooldownMS); err != nil {
			return checkViolation(err, "command override")
		}
		var b, a any
		if had {
			b = overrideDetail(before)
		}
		if o != nil {
			a = overrideDetail(*o)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: action, Target: command,
			Details: withBeforeAfter(details, b, a)})
	})
}

func overrideDetail(o CommandOverride) map[string]any {
	return map[string]any{"enabled": o.Enabled, "permission": o.Permission,
		"global_cooldown_ms": o.GlobalCooldownMS, "user_cooldown_ms": o.UserCooldownMS}
}

// PortalAlias runs fn, which checks and adds or removes an alias, in a
// transaction with the audit entry it returns: the check's lock, the write
// and its record commit together.
func (s *Store) PortalAlias(ctx context.Context, fn func(tx pgx.Tx) (AuditEntry, error)) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		e, err := fn(tx)
		if err != nil {
			return err
		}
		return s.Audit(ctx, tx, e)
	})
}

// AliasList returns a community's aliases by name.
func (s *Store) AliasList(ctx context.Context, communityID string) ([]Alias, error) {
	rows, err := s.pool.Query(ctx, `SELECT community_id::text, name, target, created_by, created_at, runs FROM aliases
		WHERE community_id = $1 ORDER BY name`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read aliases: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanAlias)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read aliases: %w", err)
	}
	return list, nil
}

// Quote is one of the memories module's quotes.
type Quote struct {
	Number      int64
	Text        string
	Author      string
	AddedBy     string
	AddedByName string
	AddedAt     time.Time
}

// Quotes lists a page of a community's quotes, newest first, with how many
// there are in all.
func (s *Store) Quotes(ctx context.Context, communityID string, offset, limit int) ([]Quote, int, error) {
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM memories_quotes WHERE community_id = $1`, communityID).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("store: unable to count quotes: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT number, text, author, added_by, added_by_name, added_at FROM memories_quotes
		WHERE community_id = $1 ORDER BY number DESC OFFSET $2 LIMIT $3`, communityID, offset, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("store: unable to read quotes: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Quote, error) {
		var q Quote
		err := r.Scan(&q.Number, &q.Text, &q.Author, &q.AddedBy, &q.AddedByName, &q.AddedAt)
		return q, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: unable to read quotes: %w", err)
	}
	return list, total, nil
}

// AddQuote adds a quote under the community's next number, as the memories
// module numbers them (never reused), audited.
func (s *Store) AddQuote(ctx context.Context, actor, communityID string, q Quote, details map[string]any) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO memories_counters (community_id, kind, last) VALUES ($1, 'quote', 1)
			ON CONFLICT (community_id, kind) DO UPDATE SET last = memories_counters.last + 1
			RETURNING last`, communityID).Scan(&n); err != nil {
			return fmt.Errorf("store: unable to number the quote: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO memories_quotes (community_id, number, text, author, added_by, added_by_name, added_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, communityID, n, q.Text, q.Author, q.AddedBy, q.AddedByName, q.AddedAt.UTC()); err != nil {
			return checkViolation(err, "quote")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "quote.add", Target: fmt.Sprint(n),
			Details: withBeforeAfter(details, nil, map[string]any{"text": q.Text, "author": q.Author})})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// DeleteQuote removes a quote, audited with what it said; a missing one is
// ErrNotFound.
func (s *Store) DeleteQuote(ctx context.Context, actor, communityID string, number int64, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var text, author string
		err := tx.QueryRow(ctx, `DELETE FROM memories_quotes WHERE community_id = $1 AND number = $2 RETURNING text, author`,
			communityID, number).Scan(&text, &author)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: quote #%d", ErrNotFound, number)
		}
		if err != nil {
			return fmt.Errorf("store: unable to delete quote: %w", err)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "quote.delete", Target: fmt.Sprint(number),
			Details: withBeforeAfter(details, map[string]any{"text": text, "author": author}, nil)})
	})
}

// ReputationRow is one subject's raw standing: Total is the reputation
// module's total plus pending chat credit, in hundredths of a point
// relative to the default score, not yet clamped.
type ReputationRow struct {
	Subject     string
	DisplayName string
	Total       int64
}

// ReputationLeaders are a community's n highest standings, ordered as the
// reputation module's !top orders them.
func (s *Store) ReputationLeaders(ctx context.Context, communityID string, n int) ([]ReputationRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT subject, display_name, total + pending FROM reputation_scores WHERE community_id = $1
		ORDER BY total + pending DESC, lower(display_name), subject LIMIT $2`, communityID, n)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reputation leaders: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReputationRow, error) {
		var l ReputationRow
		err := r.Scan(&l.Subject, &l.DisplayName, &l.Total)
		return l, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: unable to read reputation leaders: %w", err)
	}
	return list, nil
}
