package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Overlay sources: the browser sources a community can add to OBS. The
// alerts source carries schemas.OverlayAlert items; the others share the
// schemas name.
var OverlaySourceNames = []string{"alerts", "ticker", "nowplaying", "general"}

// Overlay themes.
var OverlayThemes = []string{"transparent", "dark", "light"}

// Defaults of a source that was never configured.
const (
	DefaultOverlayTheme    = "transparent"
	DefaultOverlayFontSize = 32
	DefaultOverlayWidth    = 800
	DefaultOverlayHeight   = 200
)

// OverlayLook is how a browser source draws itself.
type OverlayLook struct {
	Theme    string `json:"theme"`
	FontSize int    `json:"font_size"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
}

// DefaultOverlayLook is the look of a source never configured.
func DefaultOverlayLook() OverlayLook {
	return OverlayLook{Theme: DefaultOverlayTheme, FontSize: DefaultOverlayFontSize, Width: DefaultOverlayWidth, Height: DefaultOverlayHeight}
}

// Check reports what is wrong with a look, in words for a form.
func (l OverlayLook) Check() error {
	switch {
	case !slices.Contains(OverlayThemes, l.Theme):
		return fmt.Errorf("%w: theme %q is not transparent, dark or light", ErrConflict, l.Theme)
	case l.FontSize < 8 || l.FontSize > 200:
		return fmt.Errorf("%w: font size %d is not between 8 and 200", ErrConflict, l.FontSize)
	case l.Width < 100 || l.Width > 3840:
		return fmt.Errorf("%w: width %d is not between 100 and 3840", ErrConflict, l.Width)
	case l.Height < 50 || l.Height > 2160:
		return fmt.Errorf("%w: height %d is not between 50 and 2160", ErrConflict, l.Height)
	}
	return nil
}

// OverlaySource is one browser source of a community.
type OverlaySource struct {
	CommunityID string
	Source      string
	Look        OverlayLook
	HasToken    bool
	RotatedAt   time.Time // zero when never made
	// OldValidUntil is when the previous token stops working (zero: none).
	OldValidUntil time.Time
}

// ValidOverlaySource reports whether name is a browser source.
func ValidOverlaySource(name string) bool { return slices.Contains(OverlaySourceNames, name) }

// OverlaySources lists every browser source of a community, in
// OverlaySourceNames order, the ones never configured with their defaults.
func (s *Store) OverlaySources(ctx context.Context, communityID string) ([]OverlaySource, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT source, theme, font_size, width, height, token_hash IS NOT NULL, rotated_at, old_valid_until
		FROM overlay_sources WHERE community_id = $1`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list overlay sources: %w", err)
	}
	found := map[string]OverlaySource{}
	for rows.Next() {
		o := OverlaySource{CommunityID: communityID}
		var rotated, oldUntil *time.Time
		if err := rows.Scan(&o.Source, &o.Look.Theme, &o.Look.FontSize, &o.Look.Width, &o.Look.Height, &o.HasToken, &rotated, &oldUntil); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: unable to read overlay source: %w", err)
		}
		if rotated != nil {
			o.RotatedAt = *rotated
		}
		if oldUntil != nil {
			o.OldValidUntil = *oldUntil
		}
		found[o.Source] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unable to list overlay sources: %w", err)
	}
	out := make([]OverlaySource, 0, len(OverlaySourceNames))
	for _, name := range OverlaySourceNames {
		o, ok := found[name]
		if !ok {
			o = OverlaySource{CommunityID: communityID, Source: name, Look: DefaultOverlayLook()}
		}
		out = append(out, o)
	}
	return out, nil
}

// RotateOverlayToken gives a source a new token and returns it (it is not
// kept, only its hash). The token it replaces keeps working until
// now+grace; a grace of 0 refuses it at once. Audited.
func (s *Store) RotateOverlayToken(ctx context.Context, actor, communityID, source string, now time.Time, grace time.Duration, details map[string]any) (string, error) {
	if !ValidOverlaySource(source) {
		return "", fmt.Errorf("%w: unknown overlay source %q", ErrConflict, source)
	}
	token, err := randomToken()
	if err != nil {
		return "", err
	}
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		var had bool
		err := tx.QueryRow(ctx, `
			INSERT INTO overlay_sources (community_id, source, token_hash, rotated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (community_id, source) DO UPDATE SET
				old_token_hash = overlay_sources.token_hash,
				old_valid_until = CASE WHEN overlay_sources.token_hash IS NULL THEN NULL ELSE $5::timestamptz END,
				token_hash = EXCLUDED.token_hash, rotated_at = EXCLUDED.rotated_at
			RETURNING old_token_hash IS NOT NULL`,
			communityID, source, hashToken(token), now, now.Add(grace)).Scan(&had)
		if err != nil {
			return checkViolation(err, "overlay source")
		}
		d := map[string]any{}
		for k, v := range details {
			d[k] = v
		}
		d["grace_seconds"] = int(grace.Seconds())
		d["before"] = map[string]any{"token": had}
		d["after"] = map[string]any{"token": true}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "overlay.rotate", Target: source, Details: d})
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// SetOverlayLook changes how a source draws itself, audited with the look
// before and after.
func (s *Store) SetOverlayLook(ctx context.Context, actor, communityID, source string, look OverlayLook, details map[string]any) error {
	if !ValidOverlaySource(source) {
		return fmt.Errorf("%w: unknown overlay source %q", ErrConflict, source)
	}
	if err := look.Check(); err != nil {
		return err
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		before := DefaultOverlayLook()
		err := tx.QueryRow(ctx, `SELECT theme, font_size, width, height FROM overlay_sources
			WHERE community_id = $1 AND source = $2 FOR UPDATE`, communityID, source).
			Scan(&before.Theme, &before.FontSize, &before.Width, &before.Height)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: unable to read overlay source: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO overlay_sources (community_id, source, theme, font_size, width, height) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (community_id, source) DO UPDATE SET theme = EXCLUDED.theme, font_size = EXCLUDED.font_size,
				width = EXCLUDED.width, height = EXCLUDED.height`,
			communityID, source, look.Theme, look.FontSize, look.Width, look.Height); err != nil {
			return checkViolation(err, "overlay source")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "overlay.look", Target: source,
			Details: withBeforeAfter(details, before, look)})
	})
}

// OverlayByToken is the source a token opens at now: its current token,
// or its previous one within the grace. ErrNotFound otherwise.
func (s *Store) OverlayByToken(ctx context.Context, token string, now time.Time) (OverlaySource, error) {
	if token == "" {
		return OverlaySource{}, fmt.Errorf("%w: no overlay token", ErrNotFound)
	}
	h := hashToken(token)
	o := OverlaySource{HasToken: true}
	var rotated, oldUntil *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT community_id, source, theme, font_size, width, height, rotated_at, old_valid_until FROM overlay_sources
		WHERE token_hash = $1 OR (old_token_hash = $1 AND old_valid_until > $2)`, h, now).
		Scan(&o.CommunityID, &o.Source, &o.Look.Theme, &o.Look.FontSize, &o.Look.Width, &o.Look.Height, &rotated, &oldUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		return OverlaySource{}, fmt.Errorf("%w: overlay token", ErrNotFound)
	}
	if err != nil {
		return OverlaySource{}, fmt.Errorf("store: unable to look up overlay token: %w", err)
	}
	if rotated != nil {
		o.RotatedAt = *rotated
	}
	if oldUntil != nil {
		o.OldValidUntil = *oldUntil
	}
	return o, nil
}
