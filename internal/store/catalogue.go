package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/schemas"
)

// UpsertManifest puts a module's manifest in the catalogue. A newer (or the
// same) version replaces what is there; an older one never does, so an old
// replica starting during a rolling upgrade cannot roll the catalogue back.
// It reports whether the catalogue changed.
func (s *Store) UpsertManifest(ctx context.Context, m schemas.Manifest, builtin bool) (bool, error) {
	if err := m.Validate(); err != nil {
		return false, err
	}
	doc, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("store: unable to encode manifest: %w", err)
	}
	changed := false
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		var version string
		var old []byte
		err := tx.QueryRow(ctx, `SELECT version, manifest::text FROM modules WHERE name = $1 FOR UPDATE`, m.Name).Scan(&version, &old)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("store: unable to read module %s: %w", m.Name, err)
		case schemas.CompareVersions(m.Version, version) < 0:
			return nil
		case schemas.CompareVersions(m.Version, version) == 0 && jsonEqual(old, doc):
			return nil
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO modules (name, version, manifest, builtin) VALUES ($1, $2, $3, $4)
			ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, manifest = EXCLUDED.manifest,
				builtin = EXCLUDED.builtin, updated_at = now()`, m.Name, m.Version, doc, builtin); err != nil {
			return fmt.Errorf("store: unable to write module %s: %w", m.Name, err)
		}
		changed = true
		return nil
	})
	return changed, err
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// CatalogueEntry is a module in the catalogue.
type CatalogueEntry struct {
	Manifest schemas.Manifest
	Builtin  bool
}

// Catalogue lists every module, by name.
func (s *Store) Catalogue(ctx context.Context) ([]CatalogueEntry, error) {
	// The primary, not the replica: a catalogue read right after a registry
	// notice must see the change the notice announced.
	rows, err := s.pool.Query(ctx, `SELECT manifest, builtin FROM modules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read catalogue: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CatalogueEntry, error) {
		var e CatalogueEntry
		var doc []byte
		if err := r.Scan(&doc, &e.Builtin); err != nil {
			return e, err
		}
		if err := json.Unmarshal(doc, &e.Manifest); err != nil {
			return e, fmt.Errorf("store: module manifest unreadable: %w", err)
		}
		return e, nil
	})
}

// ModuleChoice is a community's own choice for one module.
type ModuleChoice struct {
	Enabled  bool
	Settings json.RawMessage
}

// CommunityModules returns the modules a community chose for itself; modules
// missing from the map take their manifest's default.
func (s *Store) CommunityModules(ctx context.Context, communityID string) (map[string]ModuleChoice, error) {
	rows, err := s.pool.Query(ctx, `SELECT module, enabled, settings FROM community_modules WHERE community_id = $1`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read community modules: %w", err)
	}
	defer rows.Close()
	out := map[string]ModuleChoice{}
	for rows.Next() {
		var name string
		var c ModuleChoice
		var settings []byte
		if err := rows.Scan(&name, &c.Enabled, &settings); err != nil {
			return nil, fmt.Errorf("store: unable to read community module: %w", err)
		}
		c.Settings = settings
		out[name] = c
	}
	return out, rows.Err()
}

// SetModule records a community's choice for a module (settings nil keeps
// the current settings) and audits it.
func (s *Store) SetModule(ctx context.Context, actor, communityID, module string, enabled bool, settings json.RawMessage) error {
	if settings != nil && !json.Valid(settings) {
		return fmt.Errorf("%w: module settings are not JSON", schemas.ErrInvalid)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if settings == nil {
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
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "module.set",
			Target: module, Details: map[string]any{"enabled": enabled, "settings_changed": settings != nil}})
	})
}

// CommandOverride is a community's change to one command; nil keeps the
// manifest's value.
type CommandOverride struct {
	Enabled          *bool
	Permission       *string
	GlobalCooldownMS *int64
	UserCooldownMS   *int64
}

// CommandOverrides returns a community's overrides by command name.
func (s *Store) CommandOverrides(ctx context.Context, communityID string) (map[string]CommandOverride, error) {
	rows, err := s.pool.Query(ctx, `SELECT command, enabled, permission, global_cooldown_ms, user_cooldown_ms FROM command_overrides WHERE community_id = $1`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to read command overrides: %w", err)
	}
	defer rows.Close()
	out := map[string]CommandOverride{}
	for rows.Next() {
		var name string
		var o CommandOverride
		if err := rows.Scan(&name, &o.Enabled, &o.Permission, &o.GlobalCooldownMS, &o.UserCooldownMS); err != nil {
			return nil, fmt.Errorf("store: unable to read command override: %w", err)
		}
		out[name] = o
	}
	return out, rows.Err()
}

// SetCommandOverride writes a community's override for a command and audits it.
func (s *Store) SetCommandOverride(ctx context.Context, actor, communityID, command string, o CommandOverride) error {
	if o.Permission != nil && !schemas.ValidPermission(*o.Permission) {
		return fmt.Errorf("%w: permission %q unknown", schemas.ErrInvalid, *o.Permission)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO command_overrides (community_id, command, enabled, permission, global_cooldown_ms, user_cooldown_ms)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (community_id, command) DO UPDATE SET enabled = EXCLUDED.enabled, permission = EXCLUDED.permission,
				global_cooldown_ms = EXCLUDED.global_cooldown_ms, user_cooldown_ms = EXCLUDED.user_cooldown_ms, updated_at = now()`,
			communityID, command, o.Enabled, o.Permission, o.GlobalCooldownMS, o.UserCooldownMS); err != nil {
			return checkViolation(err, "command override")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "command.override", Target: command,
			Details: map[string]any{"enabled": o.Enabled, "permission": o.Permission,
				"global_cooldown_ms": o.GlobalCooldownMS, "user_cooldown_ms": o.UserCooldownMS}})
	})
}

// Manifests lists every module's manifest (collectors read it for slash
// command autocomplete and whether a command answers privately).
func (s *Store) Manifests(ctx context.Context) ([]schemas.Manifest, error) {
	entries, err := s.Catalogue(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]schemas.Manifest, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Manifest)
	}
	return out, nil
}
