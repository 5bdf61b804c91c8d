package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/waddlebot/waddlebot/schemas"
)

// Channel is a platform channel and the community it belongs to.
type Channel struct {
	Platform    string
	ChannelID   string
	ServerID    string
	Name        string
	CommunityID string
}

const communityColumns = `c.id::text, c.name, c.prefix, c.time_zone, c.locale, c.provisional`

func scanCommunity(row pgx.Row) (schemas.Community, error) {
	var c schemas.Community
	err := row.Scan(&c.ID, &c.Name, &c.Prefix, &c.TimeZone, &c.Locale, &c.Provisional)
	return c, err
}

// ResolveChannel finds the community of a platform channel. A channel nobody
// has claimed gets a provisional community of its own, created here; two
// routers racing to create it end with one. A channel of a server (a
// Discord guild, a Slack workspace) joins its server's community instead:
// the server is recorded as a channel whose id is the server id, so every
// channel of one server shares one community until an owner moves them.
func (s *Store) ResolveChannel(ctx context.Context, ch Channel) (schemas.Community, error) {
	c, err := s.channelCommunity(ctx, ch.Platform, ch.ChannelID)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return c, err
	}
	if ch.ServerID != "" && ch.ServerID != ch.ChannelID {
		server, err := s.ResolveChannel(ctx, Channel{Platform: ch.Platform, ChannelID: ch.ServerID, ServerID: ch.ServerID})
		if err != nil {
			return schemas.Community{}, err
		}
		if _, err := s.pool.Exec(ctx, `
			INSERT INTO channels (platform, channel_id, server_id, name, community_id) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, channel_id) DO NOTHING`,
			ch.Platform, ch.ChannelID, ch.ServerID, ch.Name, server.ID); err != nil {
			return schemas.Community{}, fmt.Errorf("store: unable to record channel: %w", err)
		}
		// Whoever recorded it first decided.
		return s.channelCommunity(ctx, ch.Platform, ch.ChannelID)
	}
	name := ch.Name
	if name == "" {
		name = ch.ChannelID
	}
	id := uuid.NewString()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO communities (id, name, provisional) VALUES ($1, $2, true)`,
		id, ch.Platform+":"+name); err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to create provisional community: %w", err)
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO channels (platform, channel_id, server_id, name, community_id) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (platform, channel_id) DO NOTHING`,
		ch.Platform, ch.ChannelID, ch.ServerID, ch.Name, id)
	if err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to record channel: %w", err)
	}
	if tag.RowsAffected() == 0 {
		// Another replica created it first: use theirs.
		tx.Rollback(ctx)
		return s.channelCommunity(ctx, ch.Platform, ch.ChannelID)
	}
	if err := tx.Commit(ctx); err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to commit provisional community: %w", err)
	}
	return s.Community(ctx, id)
}

func (s *Store) channelCommunity(ctx context.Context, platform, channelID string) (schemas.Community, error) {
	c, err := scanCommunity(s.pool.QueryRow(ctx, `
		SELECT `+communityColumns+` FROM channels ch JOIN communities c ON c.id = ch.community_id
		WHERE ch.platform = $1 AND ch.channel_id = $2`, platform, channelID))
	if errors.Is(err, pgx.ErrNoRows) {
		return schemas.Community{}, fmt.Errorf("%w: channel %s/%s", ErrNotFound, platform, channelID)
	}
	if err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to look up channel %s/%s: %w", platform, channelID, err)
	}
	return c, nil
}

// Community reads one community.
func (s *Store) Community(ctx context.Context, id string) (schemas.Community, error) {
	c, err := scanCommunity(s.pool.QueryRow(ctx, `SELECT `+communityColumns+` FROM communities c WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return schemas.Community{}, fmt.Errorf("%w: community %s", ErrNotFound, id)
	}
	if err != nil {
		return schemas.Community{}, fmt.Errorf("store: unable to read community %s: %w", id, err)
	}
	return c, nil
}

// NewCommunity is what creating a community takes.
type NewCommunity struct {
	Name     string
	Prefix   string
	TimeZone string
	Locale   string
}

// CreateCommunity creates a claimed (not provisional) community.
func (s *Store) CreateCommunity(ctx context.Context, actor string, n NewCommunity) (schemas.Community, error) {
	if n.Prefix == "" {
		n.Prefix = "!"
	}
	if n.TimeZone == "" {
		n.TimeZone = "UTC"
	}
	if n.Locale == "" {
		n.Locale = "en"
	}
	id := uuid.NewString()
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO communities (id, name, prefix, time_zone, locale) VALUES ($1, $2, $3, $4, $5)`,
			id, n.Name, n.Prefix, n.TimeZone, n.Locale); err != nil {
			return checkViolation(err, "community")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: id, Actor: actor, Action: "community.create", Target: n.Name})
	})
	if err != nil {
		return schemas.Community{}, err
	}
	return s.Community(ctx, id)
}

// UpdateCommunity changes a community's name, prefix, time zone and locale.
func (s *Store) UpdateCommunity(ctx context.Context, actor string, c schemas.Community) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE communities SET name = $2, prefix = $3, time_zone = $4, locale = $5, updated_at = now() WHERE id = $1`,
			c.ID, c.Name, c.Prefix, c.TimeZone, c.Locale)
		if err != nil {
			return checkViolation(err, "community")
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: community %s", ErrNotFound, c.ID)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: c.ID, Actor: actor, Action: "community.update",
			Details: map[string]any{"prefix": c.Prefix, "time_zone": c.TimeZone, "locale": c.Locale, "name": c.Name}})
	})
}

// ClaimChannel moves a channel into a community (creating the channel row if
// new). A provisional community left without channels is removed, with its data.
func (s *Store) ClaimChannel(ctx context.Context, actor, communityID string, ch Channel) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var old string
		err := tx.QueryRow(ctx, `SELECT community_id::text FROM channels WHERE platform = $1 AND channel_id = $2 FOR UPDATE`,
			ch.Platform, ch.ChannelID).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: unable to read channel: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO channels (platform, channel_id, server_id, name, community_id) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, channel_id) DO UPDATE
			SET community_id = EXCLUDED.community_id, server_id = EXCLUDED.server_id, name = EXCLUDED.name`,
			ch.Platform, ch.ChannelID, ch.ServerID, ch.Name, communityID); err != nil {
			return checkViolation(err, "channel")
		}
		if old != "" && old != communityID {
			if _, err := tx.Exec(ctx, `
				DELETE FROM communities c WHERE c.id = $1 AND c.provisional
				AND NOT EXISTS (SELECT 1 FROM channels WHERE community_id = c.id)`, old); err != nil {
				return fmt.Errorf("store: unable to remove provisional community: %w", err)
			}
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "channel.claim",
			Target: ch.Platform + "/" + ch.ChannelID, Details: map[string]any{"from": old}})
	})
}

// Channels lists a community's channels.
func (s *Store) Channels(ctx context.Context, communityID string) ([]Channel, error) {
	rows, err := s.read.Query(ctx, `SELECT platform, channel_id, server_id, name, community_id::text FROM channels WHERE community_id = $1 ORDER BY platform, name`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list channels: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Channel, error) {
		var c Channel
		err := r.Scan(&c.Platform, &c.ChannelID, &c.ServerID, &c.Name, &c.CommunityID)
		return c, err
	})
}

// InTx runs fn in a transaction, committing when it returns nil.
func (s *Store) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: unable to begin: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: unable to commit: %w", err)
	}
	return nil
}

// ErrConflict means a write broke a uniqueness or check rule.
var ErrConflict = errors.New("store: conflict")

// ErrLimit means a per-user or per-item limit is reached.
var ErrLimit = errors.New("store: limit reached")

func checkViolation(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23514" || pgErr.Code == "23503") {
		return fmt.Errorf("%w: %s: %s", ErrConflict, what, pgErr.Message)
	}
	return fmt.Errorf("store: unable to write %s: %w", what, err)
}
