package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Alias is a community's own command: Name expands to the command line Target.
type Alias struct {
	CommunityID string
	Name        string
	Target      string
	CreatedBy   string
	CreatedAt   time.Time
	Runs        int64
}

// Aliases returns a community's aliases by name. From the primary: the
// router reloads them right after the alias module announces a change.
func (s *Store) Aliases(ctx context.Context, communityID string) (map[string]Alias, error) {
	rows, err := s.pool.Query(ctx, `SELECT community_id::text, name, target, created_by, created_at, runs FROM aliases WHERE community_id = $1`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read aliases: %w", err)
	}
	list, err := pgx.CollectRows(rows, scanAlias)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read aliases: %w", err)
	}
	out := make(map[string]Alias, len(list))
	for _, a := range list {
		out[a.Name] = a
	}
	return out, nil
}

func scanAlias(r pgx.CollectableRow) (Alias, error) {
	var a Alias
	err := r.Scan(&a.CommunityID, &a.Name, &a.Target, &a.CreatedBy, &a.CreatedAt, &a.Runs)
	return a, err
}

// AddAlias creates an alias, inside q (the module's outbox transaction).
// An existing name is ErrConflict.
func (s *Store) AddAlias(ctx context.Context, q Querier, a Alias) error {
	_, err := q.Exec(ctx, `INSERT INTO aliases (community_id, name, target, created_by) VALUES ($1, $2, $3, $4)`,
		a.CommunityID, a.Name, a.Target, a.CreatedBy)
	if err != nil {
		return checkViolation(err, "alias")
	}
	return nil
}

// RemoveAlias deletes an alias; a missing one is ErrNotFound.
func (s *Store) RemoveAlias(ctx context.Context, q Querier, communityID, name string) error {
	tag, err := q.Exec(ctx, `DELETE FROM aliases WHERE community_id = $1 AND name = $2`, communityID, name)
	if err != nil {
		return fmt.Errorf("store: unable to remove alias: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: alias %s", ErrNotFound, name)
	}
	return nil
}

// CountAliasRun records that an alias expanded for an invocation and returns
// its run count including this run. A redelivered invocation gets the count
// it got the first time and counts nothing.
func (s *Store) CountAliasRun(ctx context.Context, communityID, name, invocationID string) (int64, error) {
	var count int64
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		// Two deliveries of one event at once (a second router replica after
		// AckWait) must not both count: take turns on the invocation id.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('alias_run:' || $1))`, invocationID); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT count FROM alias_runs WHERE invocation_id = $1`, invocationID).Scan(&count)
		if err == nil {
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := tx.QueryRow(ctx, `UPDATE aliases SET runs = runs + 1 WHERE community_id = $1 AND name = $2 RETURNING runs`,
			communityID, name).Scan(&count); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: alias %s", ErrNotFound, name)
			}
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO alias_runs (invocation_id, community_id, name, count) VALUES ($1, $2, $3, $4)
			ON CONFLICT (invocation_id) DO NOTHING`, invocationID, communityID, name, count)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: unable to count alias run: %w", err)
	}
	return count, nil
}

// PruneAliasRuns deletes run records older than age: they only guard
// against counting a redelivered invocation twice, and no redelivery comes
// after WB_COMMANDS' MaxAge.
func (s *Store) PruneAliasRuns(ctx context.Context, age time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM alias_runs WHERE at < now() - $1::interval`, age.String())
	if err != nil {
		return 0, fmt.Errorf("store: unable to prune alias runs: %w", err)
	}
	return tag.RowsAffected(), nil
}
