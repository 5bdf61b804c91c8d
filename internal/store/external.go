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

// External module kinds.
const (
	ExternalNATS    = "nats"
	ExternalWebhook = "webhook"
)

// SecretOwnerExternal owns webhook modules' HMAC secrets in the secrets table.
const SecretOwnerExternal = "external"

// ExternalModule is a registered external module: what the relay and the
// portal's modules page need.
type ExternalModule struct {
	Manifest  schemas.Manifest
	Kind      string
	URL       string // webhook only
	CreatedBy string
	CreatedAt time.Time
}

// AddExternalModule registers an external module: its manifest in the
// catalogue (builtin = false), how it is reached, and for a webhook its
// secret, encrypted; audited, all in one transaction. Communities keep it
// off until an owner enables it (the manifest must not say otherwise).
// details says where the change came from (the portal's IP, "cli") and is
// merged into the audit entry.
func (s *Store) AddExternalModule(ctx context.Context, actor string, m schemas.Manifest, kind, url string, secret []byte, details map[string]any) error {
	if !m.External {
		return fmt.Errorf("%w: module %s: an external module's manifest must say \"external\": true", schemas.ErrInvalid, m.Name)
	}
	if m.DefaultEnabled {
		return fmt.Errorf("%w: module %s: external modules are off until a community enables them", schemas.ErrInvalid, m.Name)
	}
	switch {
	case kind == ExternalNATS && url == "":
	case kind == ExternalWebhook && url != "" && len(secret) > 0:
	default:
		return fmt.Errorf("%w: module %s: kind %q needs a URL and a secret for webhooks, neither for nats", schemas.ErrInvalid, m.Name, kind)
	}
	if err := m.Validate(); err != nil {
		return err
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("store: unable to encode manifest: %w", err)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var builtin bool
		err := tx.QueryRow(ctx, `SELECT builtin FROM modules WHERE name = $1`, m.Name).Scan(&builtin)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: unable to read module %s: %w", m.Name, err)
		case builtin:
			return fmt.Errorf("%w: module %s is built in", ErrConflict, m.Name)
		}
		var before any
		var oldKind, oldURL string
		err = tx.QueryRow(ctx, `SELECT kind, url FROM external_modules WHERE name = $1`, m.Name).Scan(&oldKind, &oldURL)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: unable to read external module %s: %w", m.Name, err)
		default:
			before = map[string]any{"kind": oldKind, "url": oldURL}
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO modules (name, version, manifest, builtin) VALUES ($1, $2, $3, false)
			ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, manifest = EXCLUDED.manifest, updated_at = now()`,
			m.Name, m.Version, doc); err != nil {
			return fmt.Errorf("store: unable to write module %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO external_modules (name, kind, url, created_by) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, url = EXCLUDED.url`,
			m.Name, kind, url, actor); err != nil {
			return fmt.Errorf("store: unable to write external module %s: %w", m.Name, err)
		}
		if kind == ExternalWebhook {
			if err := s.PutSecret(ctx, tx, SecretOwnerExternal, m.Name, secret); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `DELETE FROM secrets WHERE owner = $1 AND name = $2`, SecretOwnerExternal, m.Name); err != nil {
			return fmt.Errorf("store: unable to delete secret of %s: %w", m.Name, err)
		}
		return s.Audit(ctx, tx, AuditEntry{Actor: actor, Action: "external.add", Target: m.Name,
			Details: withBeforeAfter(details, before, map[string]any{"kind": kind, "url": url, "version": m.Version})})
	})
}

// RemoveExternalModule deletes an external module from the catalogue with
// its secret and its community choices; audited with details, as for
// AddExternalModule.
func (s *Store) RemoveExternalModule(ctx context.Context, actor, name string, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var kind, url string
		err := tx.QueryRow(ctx, `SELECT kind, url FROM external_modules WHERE name = $1`, name).Scan(&kind, &url)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: external module %s", ErrNotFound, name)
		}
		if err != nil {
			return fmt.Errorf("store: unable to read external module %s: %w", name, err)
		}
		for _, q := range []string{
			`DELETE FROM community_modules WHERE module = $1`,
			`DELETE FROM modules WHERE name = $1 AND NOT builtin`,
			`DELETE FROM secrets WHERE owner = 'external' AND name = $1`,
			`DELETE FROM external_pending WHERE module = $1`,
		} {
			if _, err := tx.Exec(ctx, q, name); err != nil {
				return fmt.Errorf("store: unable to remove external module %s: %w", name, err)
			}
		}
		return s.Audit(ctx, tx, AuditEntry{Actor: actor, Action: "external.remove", Target: name,
			Details: withBeforeAfter(details, map[string]any{"kind": kind, "url": url}, nil)})
	})
}

// ExternalModules lists the registered external modules by name.
func (s *Store) ExternalModules(ctx context.Context) ([]ExternalModule, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT m.manifest, e.kind, e.url, e.created_by, e.created_at
		FROM external_modules e JOIN modules m ON m.name = e.name ORDER BY e.name`)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list external modules: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExternalModule, error) {
		var e ExternalModule
		var doc []byte
		if err := r.Scan(&doc, &e.Kind, &e.URL, &e.CreatedBy, &e.CreatedAt); err != nil {
			return e, err
		}
		if err := json.Unmarshal(doc, &e.Manifest); err != nil {
			return e, fmt.Errorf("store: manifest of %s: %w", e.Manifest.Name, err)
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: unable to list external modules: %w", err)
	}
	return out, nil
}

// ExternalModule reads one external module.
func (s *Store) ExternalModule(ctx context.Context, name string) (ExternalModule, error) {
	all, err := s.ExternalModules(ctx)
	if err != nil {
		return ExternalModule{}, err
	}
	for _, e := range all {
		if e.Manifest.Name == name {
			return e, nil
		}
	}
	return ExternalModule{}, fmt.Errorf("%w: external module %s", ErrNotFound, name)
}

// PutPending records an invocation handed to an external NATS module. A
// redelivery keeps the row (and an answer already given) and opens a new
// window until expires.
func (s *Store) PutPending(ctx context.Context, inv *schemas.Invocation, expires time.Time) error {
	doc, err := json.Marshal(inv)
	if err != nil {
		return fmt.Errorf("store: unable to encode invocation: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO external_pending (invocation_id, module, community_id, invocation, expires_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (invocation_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
		inv.ID, inv.Module, inv.Community.ID, doc, expires); err != nil {
		return fmt.Errorf("store: unable to record pending invocation %s: %w", inv.ID, err)
	}
	return nil
}

// PendingAnswered reports whether a pending invocation was answered.
func (s *Store) PendingAnswered(ctx context.Context, invocationID string) (bool, error) {
	var answered bool
	err := s.pool.QueryRow(ctx, `SELECT answered_at IS NOT NULL FROM external_pending WHERE invocation_id = $1`, invocationID).Scan(&answered)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: unable to read pending invocation %s: %w", invocationID, err)
	}
	return answered, nil
}

// ErrRefused is a result the relay will not forward.
var ErrRefused = errors.New("store: result refused")

// AnswerPending claims an unanswered, unexpired invocation of module for
// its result: fn (which publishes the replies) runs with the row locked,
// and the row is marked answered only if fn succeeds. A result for an
// unknown, expired or answered invocation, or one sent to another module, is
// ErrRefused.
func (s *Store) AnswerPending(ctx context.Context, module, invocationID string, now time.Time, fn func(inv *schemas.Invocation) error) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var owner string
		var doc []byte
		var expires time.Time
		var answered bool
		err := tx.QueryRow(ctx, `
			SELECT module, invocation, expires_at, answered_at IS NOT NULL FROM external_pending
			WHERE invocation_id = $1 FOR UPDATE`, invocationID).Scan(&owner, &doc, &expires, &answered)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%w: invocation %s unknown", ErrRefused, invocationID)
		case err != nil:
			return fmt.Errorf("store: unable to read pending invocation %s: %w", invocationID, err)
		case owner != module:
			return fmt.Errorf("%w: invocation %s was sent to module %s, not %s", ErrRefused, invocationID, owner, module)
		case answered:
			return fmt.Errorf("%w: invocation %s was answered already", ErrRefused, invocationID)
		case !now.Before(expires):
			return fmt.Errorf("%w: invocation %s expired at %s", ErrRefused, invocationID, expires.UTC().Format(time.RFC3339))
		}
		var inv schemas.Invocation
		if err := json.Unmarshal(doc, &inv); err != nil {
			return fmt.Errorf("store: pending invocation %s: %w", invocationID, err)
		}
		if err := fn(&inv); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE external_pending SET answered_at = $2 WHERE invocation_id = $1`, invocationID, now); err != nil {
			return fmt.Errorf("store: unable to mark invocation %s answered: %w", invocationID, err)
		}
		return nil
	})
}

// ExpirePending closes an invocation's window: a result arriving after its
// attempt gave up is refused, and the next attempt (if any) opens a new one.
func (s *Store) ExpirePending(ctx context.Context, invocationID string, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE external_pending SET expires_at = $2 WHERE invocation_id = $1 AND answered_at IS NULL`,
		invocationID, now); err != nil {
		return fmt.Errorf("store: unable to expire pending invocation %s: %w", invocationID, err)
	}
	return nil
}

// PrunePending deletes pending rows expired before cutoff.
func (s *Store) PrunePending(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM external_pending WHERE expires_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("store: unable to prune pending invocations: %w", err)
	}
	return tag.RowsAffected(), nil
}
