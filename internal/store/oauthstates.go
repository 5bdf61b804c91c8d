package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// oauthStateKeep is how long an OAuth state nobody came back with is kept
// before CreateOAuthState sweeps it: longer than any callback accepts one.
const oauthStateKeep = time.Hour

// CreateOAuthState hands out a fresh OAuth state value (32 random bytes,
// base64url) for a connect link of platform, remembering kind (what the
// link connects; "" when the platform has one kind). States older than an
// hour are swept in the same statement.
func (s *Store) CreateOAuthState(ctx context.Context, platform, kind string) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("store: unable to make an OAuth state: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(raw)
	if _, err := s.pool.Exec(ctx, `
		WITH swept AS (DELETE FROM oauth_states WHERE created_at < now() - $4::bigint * interval '1 microsecond')
		INSERT INTO oauth_states (state, platform, kind) VALUES ($1, $2, $3)`,
		state, platform, kind, oauthStateKeep.Microseconds()); err != nil {
		return "", fmt.Errorf("store: unable to record an OAuth state for %s: %w", platform, err)
	}
	return state, nil
}

// TakeOAuthState spends a state value of platform and returns its kind.
// Reading and deleting it is one statement, so two callbacks racing with
// one state cannot both win. A state that is unknown, already taken,
// another platform's or older than maxAge is an error wrapping ErrNotFound.
func (s *Store) TakeOAuthState(ctx context.Context, platform, state string, maxAge time.Duration) (string, error) {
	if state == "" {
		return "", fmt.Errorf("%w: empty OAuth state", ErrNotFound)
	}
	var (
		kind  string
		fresh bool
	)
	err := s.pool.QueryRow(ctx, `
		DELETE FROM oauth_states WHERE state = $1 AND platform = $2
		RETURNING kind, created_at > now() - $3::bigint * interval '1 microsecond'`,
		state, platform, maxAge.Microseconds()).Scan(&kind, &fresh)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: OAuth state for %s (unknown or used)", ErrNotFound, platform)
	}
	if err != nil {
		return "", fmt.Errorf("store: unable to check an OAuth state for %s: %w", platform, err)
	}
	if !fresh {
		return "", fmt.Errorf("%w: OAuth state for %s (expired)", ErrNotFound, platform)
	}
	return kind, nil
}
