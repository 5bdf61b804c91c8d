package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// APIKeyPrefix starts every API key secret, so a leaked one is easy to
// recognise (secret scanners, logs) and to tell apart from session tokens.
const APIKeyPrefix = "wbk_"

// API key scopes.
const (
	ScopeCommunitiesRead  = "communities:read"
	ScopeCommunitiesWrite = "communities:write"
	ScopeModulesRead      = "modules:read"
	ScopeModulesWrite     = "modules:write"
	ScopeAliasesWrite     = "aliases:write"
	ScopeAuditRead        = "audit:read"
	ScopeAI               = "ai"
	ScopeChannelsWrite    = "channels:write"
	ScopeContentWrite     = "content:write"
	ScopeOverlaysWrite    = "overlays:write"
	ScopeUsersAdmin       = "users:admin"
	ScopeExternalAdmin    = "external:admin"
)

// APIScopes lists every scope a key may hold.
var APIScopes = []string{ScopeCommunitiesRead, ScopeCommunitiesWrite, ScopeModulesRead, ScopeModulesWrite,
	ScopeAliasesWrite, ScopeAuditRead, ScopeAI, ScopeChannelsWrite, ScopeContentWrite, ScopeOverlaysWrite,
	ScopeUsersAdmin, ScopeExternalAdmin}

// ValidAPIScope reports whether s is a known scope.
func ValidAPIScope(s string) bool {
	for _, x := range APIScopes {
		if x == s {
			return true
		}
	}
	return false
}

// APIKey is a key without its secret.
type APIKey struct {
	ID          string
	Name        string
	Hint        string // the secret's first characters, to recognise it in a list
	UserID      string
	CommunityID string // "" for a site-wide key
	Scopes      []string
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	LastUsedAt  *time.Time
}

// Has reports whether the key holds scope.
func (k APIKey) Has(scope string) bool {
	for _, s := range k.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Live reports whether the key may be used at now.
func (k APIKey) Live(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// NewAPIKey is what creating a key takes.
type NewAPIKey struct {
	Name        string
	UserID      string
	CommunityID string // "" for site-wide
	Scopes      []string
	ExpiresAt   *time.Time
}

const apiKeyColumns = `id::text, name, hint, user_id::text, coalesce(community_id::text, ''), scopes, created_at, expires_at, revoked_at, last_used_at`

func scanAPIKey(row pgx.Row) (APIKey, error) {
	var k APIKey
	err := row.Scan(&k.ID, &k.Name, &k.Hint, &k.UserID, &k.CommunityID, &k.Scopes, &k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.LastUsedAt)
	return k, err
}

// CreateAPIKey makes a key and returns its secret, which is never stored:
// only its SHA-256 is. A plain fast hash is enough because the secret is
// 256 random bits, not a password someone chose; a slow KDF would only
// slow every API request down.
func (s *Store) CreateAPIKey(ctx context.Context, actor string, n NewAPIKey, details map[string]any) (string, APIKey, error) {
	if len(n.Scopes) == 0 {
		return "", APIKey{}, fmt.Errorf("%w: an API key needs at least one scope", ErrConflict)
	}
	for _, sc := range n.Scopes {
		if !ValidAPIScope(sc) {
			return "", APIKey{}, fmt.Errorf("%w: unknown scope %q", ErrConflict, sc)
		}
	}
	tok, err := randomToken()
	if err != nil {
		return "", APIKey{}, err
	}
	secret := APIKeyPrefix + tok
	var community any
	if n.CommunityID != "" {
		community = n.CommunityID
	}
	var k APIKey
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		k, err = scanAPIKey(tx.QueryRow(ctx, `
			INSERT INTO api_keys (id, name, secret_hash, hint, user_id, community_id, scopes, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+apiKeyColumns,
			uuid.NewString(), n.Name, hashToken(secret), secret[:len(APIKeyPrefix)+6], n.UserID, community, n.Scopes, n.ExpiresAt))
		if err != nil {
			return checkViolation(err, "API key")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: n.CommunityID, Actor: actor, Action: "apikey.create", Target: k.ID,
			Details: withBeforeAfter(details, nil, map[string]any{"name": k.Name, "scopes": k.Scopes, "expires_at": k.ExpiresAt,
				"community_id": k.CommunityID, "user_id": k.UserID})})
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return secret, k, nil
}

// APIKeyBySecret finds the key of a secret, live or not (the caller tells
// expired from revoked); an unknown secret is ErrNotFound.
func (s *Store) APIKeyBySecret(ctx context.Context, secret string) (APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE secret_hash = $1`, hashToken(secret)))
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("%w: API key", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("store: unable to read API key: %w", err)
	}
	return k, nil
}

// APIKeysOf lists a user's keys, newest first.
func (s *Store) APIKeysOf(ctx context.Context, userID string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC, id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list API keys: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) { return scanAPIKey(r) })
}

// RevokeAPIKey revokes a key of userID (any user's when anyUser, for a
// super-admin), audited. A missing or already revoked key is ErrNotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, actor, userID, id string, anyUser bool, now time.Time, details map[string]any) error {
	if _, err := uuid.Parse(id); err != nil {
		return fmt.Errorf("%w: API key %q", ErrNotFound, id)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		k, err := scanAPIKey(tx.QueryRow(ctx, `
			UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND ($2 OR user_id = $4) AND revoked_at IS NULL
			RETURNING `+apiKeyColumns, id, anyUser, now, userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: API key %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("store: unable to revoke API key: %w", err)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: k.CommunityID, Actor: actor, Action: "apikey.revoke", Target: k.ID,
			Details: withBeforeAfter(details, "live", "revoked")})
	})
}

// TouchAPIKey records a key's use at now, at most once per every: a busy
// key would otherwise write a row on every request.
func (s *Store) TouchAPIKey(ctx context.Context, id string, now time.Time, every time.Duration) error {
	if _, err := s.pool.Exec(ctx, `
		UPDATE api_keys SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2::timestamptz - $3::bigint * interval '1 microsecond')`,
		id, now, every.Microseconds()); err != nil {
		return fmt.Errorf("store: unable to record API key use: %w", err)
	}
	return nil
}

// AuditPage lists a community's entries newest first, older than the
// entry beforeID (0 for the newest): a stable cursor while entries arrive.
func (s *Store) AuditPage(ctx context.Context, communityID string, beforeID int64, limit int) ([]AuditEntry, error) {
	rows, err := s.read.Query(ctx, `
		SELECT id, coalesce(community_id::text, ''), actor, action, target, details, at
		FROM audit_log WHERE community_id = $1 AND ($2 = 0 OR id < $2) ORDER BY id DESC LIMIT $3`, communityID, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read audit log: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.CommunityID, &e.Actor, &e.Action, &e.Target, &e.Details, &e.At)
		return e, err
	})
}

// DeleteCommandOverrideAudited removes a community's override of a command,
// so the manifest's values apply again, audited with what it was.
func (s *Store) DeleteCommandOverrideAudited(ctx context.Context, actor, communityID, command string, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var o CommandOverride
		err := tx.QueryRow(ctx, `DELETE FROM command_overrides WHERE community_id = $1 AND command = $2
			RETURNING enabled, permission, global_cooldown_ms, user_cooldown_ms`, communityID, command).
			Scan(&o.Enabled, &o.Permission, &o.GlobalCooldownMS, &o.UserCooldownMS)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: override of %s", ErrNotFound, command)
		}
		if err != nil {
			return fmt.Errorf("store: unable to delete command override: %w", err)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "command.override_reset", Target: command,
			Details: withBeforeAfter(details, map[string]any{"enabled": o.Enabled, "permission": o.Permission,
				"global_cooldown_ms": o.GlobalCooldownMS, "user_cooldown_ms": o.UserCooldownMS}, nil)})
	})
}
