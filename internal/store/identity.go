package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PersonOf returns the person a platform account is linked to, or "" when
// it is linked to none. The router calls it for every invocation (cached),
// so linked accounts share what modules keep per person. It reads the
// primary, not a read replica: a link must count from the next command.
func (s *Store) PersonOf(ctx context.Context, platform, userID string) (string, error) {
	return PersonIn(ctx, s.pool, platform, userID)
}

// PersonIn is PersonOf inside q (a module's transaction).
func PersonIn(ctx context.Context, q Querier, platform, userID string) (string, error) {
	var id string
	err := q.QueryRow(ctx, `SELECT person_id::text FROM person_accounts WHERE platform = $1 AND user_id = $2`,
		platform, userID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: unable to read the person of an account: %w", err)
	}
	return id, nil
}

// PersonAccount is one platform account of a person.
type PersonAccount struct {
	Platform    string
	UserID      string
	Login       string
	DisplayName string
}

// PersonAccounts lists a person's accounts, by platform, inside q when it is
// a transaction.
func (s *Store) PersonAccounts(ctx context.Context, q Querier, personID string) ([]PersonAccount, error) {
	if q == nil {
		q = s.read
	}
	rows, err := q.Query(ctx, `SELECT platform, user_id, login, display_name FROM person_accounts WHERE person_id = $1 ORDER BY platform`, personID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read a person's accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PersonAccount, error) {
		var a PersonAccount
		err := r.Scan(&a.Platform, &a.UserID, &a.Login, &a.DisplayName)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: unable to read a person's accounts: %w", err)
	}
	return accounts, nil
}

// PersonLabels returns the labels any of a person's accounts has in a
// community, sorted and without repeats: linked accounts share labels.
func (s *Store) PersonLabels(ctx context.Context, communityID, personID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT l.label FROM labels l
		JOIN person_accounts a ON a.platform = l.platform AND lower(a.login) = l.user_login
		WHERE l.community_id = $1 AND a.person_id = $2 ORDER BY l.label`, communityID, personID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read a person's labels: %w", err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: unable to read a person's labels: %w", err)
	}
	return labels, nil
}
