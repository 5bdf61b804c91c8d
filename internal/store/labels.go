package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// UserLabels returns the labels of one chat user in a community, sorted.
// Logins compare in lower case, as mentions are typed.
func (s *Store) UserLabels(ctx context.Context, communityID, platform, login string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT label FROM labels WHERE community_id = $1 AND platform = $2 AND user_login = $3 ORDER BY label`,
		communityID, platform, strings.ToLower(login))
	if err != nil {
		return nil, fmt.Errorf("store: unable to read labels: %w", err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: unable to read labels: %w", err)
	}
	return labels, nil
}

// AddLabel gives a user a label, inside q, unless they have limit labels
// already (ErrLimit) or this one (ErrConflict).
func (s *Store) AddLabel(ctx context.Context, q Querier, communityID, platform, login, label, by string, limit int) error {
	login = strings.ToLower(login)
	// Lock the user's labels so two adds cannot both pass the limit.
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1 || ':' || $2 || ':' || $3))`, communityID, platform, login); err != nil {
		return fmt.Errorf("store: unable to lock labels: %w", err)
	}
	var n int
	if err := q.QueryRow(ctx, `SELECT count(*) FROM labels WHERE community_id = $1 AND platform = $2 AND user_login = $3`,
		communityID, platform, login).Scan(&n); err != nil {
		return fmt.Errorf("store: unable to count labels: %w", err)
	}
	if n >= limit {
		return fmt.Errorf("%w: %d labels already", ErrLimit, n)
	}
	if _, err := q.Exec(ctx, `INSERT INTO labels (community_id, platform, user_login, label, added_by) VALUES ($1, $2, $3, $4, $5)`,
		communityID, platform, login, label, by); err != nil {
		return checkViolation(err, "label")
	}
	return nil
}

// RemoveLabel takes a label from a user; a missing one is ErrNotFound.
func (s *Store) RemoveLabel(ctx context.Context, q Querier, communityID, platform, login, label string) error {
	tag, err := q.Exec(ctx, `DELETE FROM labels WHERE community_id = $1 AND platform = $2 AND user_login = $3 AND label = $4`,
		communityID, platform, strings.ToLower(login), label)
	if err != nil {
		return fmt.Errorf("store: unable to remove label: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: label %s", ErrNotFound, label)
	}
	return nil
}
