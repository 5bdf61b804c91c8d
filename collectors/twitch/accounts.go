package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// secretOwner owns the Twitch tokens in the secrets table.
const secretOwner = "twitch"

func tokenSecretName(userID string) string { return "token." + userID }

// OAuthToken is a user's grant: stored encrypted, never logged.
type OAuthToken struct {
	Access    string    `json:"access"`
	Refresh   string    `json:"refresh"`
	Scopes    []string  `json:"scopes"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Store keeps the connected Twitch accounts in PostgreSQL (twitch_accounts)
// and their tokens in the encrypted secrets table.
type Store struct {
	st *store.Store
}

// NewStore wraps the system of record.
func NewStore(st *store.Store) *Store { return &Store{st: st} }

var _ Accounts = (*Store)(nil)

const accountColumns = `user_id, login, display_name, kind, scopes, status, bot_is_moderator, connected_at, error`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	err := row.Scan(&a.UserID, &a.Login, &a.DisplayName, &a.Kind, &a.Scopes, &a.Status,
		&a.BotIsModerator, &a.ConnectedAt, &a.Error)
	return a, err
}

// Connected lists the connected accounts of a kind ("" for every kind).
func (s *Store) Connected(ctx context.Context, kind string) ([]Account, error) {
	rows, err := s.st.Pool().Query(ctx, `
		SELECT `+accountColumns+` FROM twitch_accounts
		WHERE status = 'connected' AND ($1 = '' OR kind = $1) ORDER BY kind, login`, kind)
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to list connected accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to list connected accounts: %w", err)
	}
	return accounts, nil
}

// All lists every account, connected or not (the status page).
func (s *Store) All(ctx context.Context) ([]Account, error) {
	rows, err := s.st.Pool().Query(ctx, `SELECT `+accountColumns+` FROM twitch_accounts ORDER BY kind, login`)
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to list accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to list accounts: %w", err)
	}
	return accounts, nil
}

// Account reads one account. An unknown user is ErrNotConnected (and
// store.ErrNotFound).
func (s *Store) Account(ctx context.Context, userID string) (Account, error) {
	a, err := scanAccount(s.st.Pool().QueryRow(ctx, `SELECT `+accountColumns+` FROM twitch_accounts WHERE user_id = $1`, userID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, fmt.Errorf("%w: %w: twitch account %s", ErrNotConnected, store.ErrNotFound, userID)
	}
	if err != nil {
		return Account{}, fmt.Errorf("twitch: unable to read account %s: %w", userID, err)
	}
	return a, nil
}

// Save records a freshly connected account and its token, in one
// transaction. A bot account replaces the bot connected before it; a
// broadcaster gets its channel row, as the router would make it on the first
// event, so the channel can be claimed before anyone chats.
func (s *Store) Save(ctx context.Context, a Account, tok OAuthToken) error {
	if a.UserID == "" || (a.Kind != KindBroadcaster && a.Kind != KindBot) {
		return fmt.Errorf("twitch: unable to save account %q of kind %q: missing id or unknown kind", a.UserID, a.Kind)
	}
	if a.Scopes == nil {
		a.Scopes = tok.Scopes
	}
	if a.Scopes == nil {
		a.Scopes = []string{}
	}
	err := s.st.InTx(ctx, func(tx pgx.Tx) error {
		if a.Kind == KindBot {
			if _, err := tx.Exec(ctx, `
				UPDATE twitch_accounts SET status = 'disconnected', error = 'replaced by another bot account', updated_at = now()
				WHERE kind = 'bot' AND status = 'connected' AND user_id <> $1`, a.UserID); err != nil {
				return fmt.Errorf("twitch: unable to retire the previous bot account: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO twitch_accounts (user_id, login, display_name, kind, scopes, status, error, token_expires_at, connected_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, 'connected', '', $6, now(), now())
			ON CONFLICT (user_id) DO UPDATE SET login = EXCLUDED.login, display_name = EXCLUDED.display_name,
				kind = EXCLUDED.kind, scopes = EXCLUDED.scopes, status = 'connected', error = '',
				token_expires_at = EXCLUDED.token_expires_at, connected_at = now(), updated_at = now()`,
			a.UserID, a.Login, a.DisplayName, a.Kind, a.Scopes, tok.ExpiresAt); err != nil {
			return fmt.Errorf("twitch: unable to save account %s: %w", a.UserID, err)
		}
		return s.putToken(ctx, tx, a.UserID, tok)
	})
	if err != nil {
		return err
	}
	if a.Kind == KindBroadcaster {
		if _, err := s.st.ResolveChannel(ctx, store.Channel{Platform: schemas.PlatformTwitch, ChannelID: a.UserID, Name: a.Login}); err != nil {
			return fmt.Errorf("twitch: unable to record channel of %s: %w", a.UserID, err)
		}
	}
	return nil
}

// SetStatus marks an account connected or disconnected, with the reason. A
// disconnected account's token is deleted: Twitch no longer honours it.
func (s *Store) SetStatus(ctx context.Context, userID, status, reason string) error {
	return s.st.InTx(ctx, func(tx pgx.Tx) error { return s.setStatus(ctx, tx, userID, status, reason) })
}

func (s *Store) setStatus(ctx context.Context, q store.Querier, userID, status, reason string) error {
	if status != StatusConnected && status != StatusDisconnected {
		return fmt.Errorf("twitch: unknown account status %q", status)
	}
	tag, err := q.Exec(ctx, `UPDATE twitch_accounts SET status = $2, error = $3, updated_at = now() WHERE user_id = $1`,
		userID, status, reason)
	if err != nil {
		return fmt.Errorf("twitch: unable to set status of %s: %w", userID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: twitch account %s", store.ErrNotFound, userID)
	}
	if status == StatusDisconnected {
		if _, err := q.Exec(ctx, `DELETE FROM secrets WHERE owner = $1 AND name = $2`, secretOwner, tokenSecretName(userID)); err != nil {
			return fmt.Errorf("twitch: unable to delete token of %s: %w", userID, err)
		}
	}
	return nil
}

// SetBotIsModerator records whether the bot moderates a broadcaster's channel.
func (s *Store) SetBotIsModerator(ctx context.Context, broadcasterID string, mod bool) error {
	tag, err := s.st.Pool().Exec(ctx, `UPDATE twitch_accounts SET bot_is_moderator = $2, updated_at = now() WHERE user_id = $1`,
		broadcasterID, mod)
	if err != nil {
		return fmt.Errorf("twitch: unable to set moderator flag of %s: %w", broadcasterID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: twitch account %s", store.ErrNotFound, broadcasterID)
	}
	return nil
}

// setLogin follows a rename that /oauth2/validate revealed.
func (s *Store) setLogin(ctx context.Context, userID, login string) error {
	if _, err := s.st.Pool().Exec(ctx, `UPDATE twitch_accounts SET login = $2, updated_at = now() WHERE user_id = $1`, userID, login); err != nil {
		return fmt.Errorf("twitch: unable to rename %s: %w", userID, err)
	}
	return nil
}

// token reads a user's stored token; a missing one is ErrNotConnected.
func (s *Store) token(ctx context.Context, userID string) (OAuthToken, error) {
	raw, err := s.st.Secret(ctx, secretOwner, tokenSecretName(userID))
	if errors.Is(err, store.ErrNotFound) {
		return OAuthToken{}, fmt.Errorf("%w: no token for %s", ErrNotConnected, userID)
	}
	if err != nil {
		return OAuthToken{}, fmt.Errorf("twitch: unable to read token of %s: %w", userID, err)
	}
	var tok OAuthToken
	if err := json.Unmarshal(raw, &tok); err != nil {
		return OAuthToken{}, fmt.Errorf("twitch: unable to decode token of %s: %w", userID, err)
	}
	return tok, nil
}

// putToken stores a user's token (encrypted) and its expiry on the account.
func (s *Store) putToken(ctx context.Context, q store.Querier, userID string, tok OAuthToken) error {
	raw, err := json.Marshal(tok)
	if err != nil {
		return fmt.Errorf("twitch: unable to encode token of %s: %w", userID, err)
	}
	if err := s.st.PutSecret(ctx, q, secretOwner, tokenSecretName(userID), raw); err != nil {
		return fmt.Errorf("twitch: unable to store token of %s: %w", userID, err)
	}
	if _, err := q.Exec(ctx, `UPDATE twitch_accounts SET token_expires_at = $2, updated_at = now() WHERE user_id = $1`,
		userID, tok.ExpiresAt); err != nil {
		return fmt.Errorf("twitch: unable to record token expiry of %s: %w", userID, err)
	}
	return nil
}
