package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Why a user may attach a channel (AttachOption.Reason).
const (
	ReasonTwitchBroadcaster = "twitch-broadcaster" // their Twitch account connected as broadcaster
	ReasonDiscordInstall    = "discord-install"    // they added the bot to the guild
	ReasonSlackInstall      = "slack-install"      // they installed the app in the workspace
	ReasonAdmin             = "admin"              // admin or owner of the community holding it
)

// AttachOption is a channel a user may attach to a community of theirs,
// with where it is now.
type AttachOption struct {
	Channel Channel
	Reason  string
	// The community holding it now; empty when the channel has no row yet
	// (a connected broadcaster whose channel never spoke).
	CommunityName        string
	CommunityProvisional bool
	// The user's role in that community, "" for none.
	HolderRole string
}

// Movable reports whether the option may leave its community: a new
// channel, one of a provisional community (moving it claims it), or one
// of a community the user administers. A claimed community's channel is
// not taken away by someone who merely connected it elsewhere.
func (o AttachOption) Movable() bool {
	return o.Channel.CommunityID == "" || o.CommunityProvisional || RoleRank(o.HolderRole) >= RoleRank(RoleAdmin)
}

// ErrLastSuperAdmin refuses a change that would leave no enabled
// super-admin: nobody could then manage users.
var ErrLastSuperAdmin = errors.New("store: the last super-admin stays")

// AttachOptions lists the channels userID may attach, each once, by the
// strongest proof first: a platform's own word (an OAuth connection or
// install made by the user's identity) before community membership.
func (s *Store) AttachOptions(ctx context.Context, userID string) ([]AttachOption, error) {
	rows, err := s.pool.Query(ctx, `
		WITH ids AS (SELECT platform, platform_user_id FROM portal_identities WHERE user_id = $1),
		offered AS (
			SELECT 'twitch' AS platform, ta.user_id AS channel_id, '' AS server_id, ta.login AS name, $2 AS reason, 1 AS rank
			FROM twitch_accounts ta JOIN ids ON ids.platform = 'twitch' AND ids.platform_user_id = ta.user_id
			WHERE ta.kind = 'broadcaster' AND ta.status = 'connected'
			UNION ALL
			SELECT 'discord', g.guild_id, g.guild_id, g.name, $3, 2
			FROM discord_guilds g JOIN ids ON ids.platform = 'discord' AND ids.platform_user_id = g.installed_by
			UNION ALL
			SELECT 'discord', ch.channel_id, ch.server_id, ch.name, $3, 2
			FROM discord_guilds g JOIN ids ON ids.platform = 'discord' AND ids.platform_user_id = g.installed_by
			JOIN channels ch ON ch.platform = 'discord' AND ch.server_id = g.guild_id AND ch.channel_id <> g.guild_id
			UNION ALL
			SELECT 'slack', w.team_id, w.team_id, w.team_name, $4, 3
			FROM slack_workspaces w JOIN ids ON ids.platform = 'slack' AND ids.platform_user_id = w.installed_by
			WHERE w.status = 'installed'
			UNION ALL
			SELECT 'slack', ch.channel_id, ch.server_id, ch.name, $4, 3
			FROM slack_workspaces w JOIN ids ON ids.platform = 'slack' AND ids.platform_user_id = w.installed_by
			JOIN channels ch ON ch.platform = 'slack' AND ch.server_id = w.team_id AND ch.channel_id <> w.team_id
			WHERE w.status = 'installed'
			UNION ALL
			SELECT ch.platform, ch.channel_id, ch.server_id, ch.name, $5, 4
			FROM channels ch JOIN community_members m ON m.community_id = ch.community_id
			WHERE m.user_id = $1 AND m.role IN ('owner', 'admin')
		)
		SELECT DISTINCT ON (o.platform, o.channel_id) o.platform, o.channel_id,
			coalesce(ch.server_id, o.server_id), coalesce(nullif(ch.name, ''), o.name), o.reason,
			coalesce(ch.community_id::text, ''), coalesce(c.name, ''), coalesce(c.provisional, false), coalesce(m.role, '')
		FROM offered o
		LEFT JOIN channels ch ON ch.platform = o.platform AND ch.channel_id = o.channel_id
		LEFT JOIN communities c ON c.id = ch.community_id
		LEFT JOIN community_members m ON m.community_id = ch.community_id AND m.user_id = $1
		ORDER BY o.platform, o.channel_id, o.rank`,
		userID, ReasonTwitchBroadcaster, ReasonDiscordInstall, ReasonSlackInstall, ReasonAdmin)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list attachable channels: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AttachOption, error) {
		var o AttachOption
		err := r.Scan(&o.Channel.Platform, &o.Channel.ChannelID, &o.Channel.ServerID, &o.Channel.Name, &o.Reason,
			&o.Channel.CommunityID, &o.CommunityName, &o.CommunityProvisional, &o.HolderRole)
		return o, err
	})
}

// AttachResult says what an attach did.
type AttachResult struct {
	From        string   // the community it left, "" for a new channel row
	Moved       []string // platform/channel ids moved (a server takes its channels along)
	FromRemoved bool     // From was an empty provisional community, now removed
}

// AttachChannel moves ch from ch.CommunityID ("" for a channel without a
// row yet) into community to; a server record takes along the server's
// channels still in the same community. ErrConflict when the channel is
// already there or no longer where the caller saw it. A provisional
// community left without channels is removed, as ClaimChannel does. Both
// communities' logs record the move, with details (who, from where).
func (s *Store) AttachChannel(ctx context.Context, actor, to string, ch Channel, details map[string]any) (AttachResult, error) {
	var res AttachResult
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		res = AttachResult{}
		var from string
		err := tx.QueryRow(ctx, `SELECT community_id::text FROM channels WHERE platform = $1 AND channel_id = $2 FOR UPDATE`,
			ch.Platform, ch.ChannelID).Scan(&from)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: unable to read channel: %w", err)
		}
		if from == to {
			return fmt.Errorf("%w: %s/%s is already in this community", ErrConflict, ch.Platform, ch.ChannelID)
		}
		// The caller decided from where the channel was when it checked;
		// a move made since then is someone else's and needs a new look.
		if from != ch.CommunityID {
			return fmt.Errorf("%w: %s/%s moved meanwhile", ErrConflict, ch.Platform, ch.ChannelID)
		}
		res.From = from
		if _, err := tx.Exec(ctx, `
			INSERT INTO channels (platform, channel_id, server_id, name, community_id) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (platform, channel_id) DO UPDATE SET community_id = EXCLUDED.community_id`,
			ch.Platform, ch.ChannelID, ch.ServerID, ch.Name, to); err != nil {
			return checkViolation(err, "channel")
		}
		res.Moved = append(res.Moved, ch.Platform+"/"+ch.ChannelID)
		if from != "" && ch.ServerID != "" && ch.ServerID == ch.ChannelID {
			// A server's channels followed it into its community; they
			// follow it out, or the old community would keep half of it.
			rows, err := tx.Query(ctx, `
				UPDATE channels SET community_id = $4 WHERE platform = $1 AND server_id = $2 AND community_id = $3
				AND channel_id <> server_id RETURNING channel_id`, ch.Platform, ch.ServerID, from, to)
			if err != nil {
				return fmt.Errorf("store: unable to move the server's channels: %w", err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("store: unable to move the server's channels: %w", err)
			}
			for _, id := range ids {
				res.Moved = append(res.Moved, ch.Platform+"/"+id)
			}
			// The guild record names its community, with ON DELETE
			// CASCADE: left behind, removing the old provisional
			// community below would forget the install.
			if ch.Platform == "discord" {
				if _, err := tx.Exec(ctx, `UPDATE discord_guilds SET community_id = $2, updated_at = now() WHERE guild_id = $1`, ch.ServerID, to); err != nil {
					return fmt.Errorf("store: unable to move the guild record: %w", err)
				}
			}
		}
		target := ch.Platform + "/" + ch.ChannelID
		d := withBeforeAfter(details, from, to)
		d["moved"] = res.Moved
		if from != "" {
			tag, err := tx.Exec(ctx, `
				DELETE FROM communities c WHERE c.id = $1 AND c.provisional
				AND NOT EXISTS (SELECT 1 FROM channels WHERE community_id = c.id)`, from)
			if err != nil {
				return fmt.Errorf("store: unable to remove provisional community: %w", err)
			}
			res.FromRemoved = tag.RowsAffected() == 1
			d["from_removed"] = res.FromRemoved
			if err := s.Audit(ctx, tx, AuditEntry{CommunityID: from, Actor: actor, Action: "channel.detach", Target: target, Details: d}); err != nil {
				return err
			}
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: to, Actor: actor, Action: "channel.attach", Target: target, Details: d})
	})
	return res, err
}

// DetachChannel removes a channel from community (a server record takes
// the server's channels in that community along). On its next message the
// channel resolves afresh: a provisional community of its own, or its
// server's.
func (s *Store) DetachChannel(ctx context.Context, actor, community, platform, channelID string, details map[string]any) ([]string, error) {
	var removed []string
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var serverID string
		err := tx.QueryRow(ctx, `DELETE FROM channels WHERE platform = $1 AND channel_id = $2 AND community_id = $3 RETURNING server_id`,
			platform, channelID, community).Scan(&serverID)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: channel %s/%s in community %s", ErrNotFound, platform, channelID, community)
		}
		if err != nil {
			return fmt.Errorf("store: unable to detach channel: %w", err)
		}
		removed = []string{platform + "/" + channelID}
		if serverID != "" && serverID == channelID {
			rows, err := tx.Query(ctx, `DELETE FROM channels WHERE platform = $1 AND server_id = $2 AND community_id = $3 RETURNING channel_id`,
				platform, serverID, community)
			if err != nil {
				return fmt.Errorf("store: unable to detach the server's channels: %w", err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return fmt.Errorf("store: unable to detach the server's channels: %w", err)
			}
			for _, id := range ids {
				removed = append(removed, platform+"/"+id)
			}
		}
		d := withBeforeAfter(details, community, nil)
		d["removed"] = removed
		return s.Audit(ctx, tx, AuditEntry{CommunityID: community, Actor: actor, Action: "channel.detach",
			Target: platform + "/" + channelID, Details: d})
	})
	return removed, err
}

// ClaimCommunity makes userID the owner of a provisional community, which
// stops being provisional. ErrConflict when it is not provisional (any
// more: two people racing to claim it end with one owner).
func (s *Store) ClaimCommunity(ctx context.Context, actor, communityID, userID string, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		c, err := scanCommunity(tx.QueryRow(ctx, `SELECT `+communityColumns+` FROM communities c WHERE c.id = $1 FOR UPDATE`, communityID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: community %s", ErrNotFound, communityID)
		}
		if err != nil {
			return fmt.Errorf("store: unable to read community %s: %w", communityID, err)
		}
		if !c.Provisional {
			return fmt.Errorf("%w: community %s is not provisional", ErrConflict, communityID)
		}
		if _, err := tx.Exec(ctx, `UPDATE communities SET provisional = false, updated_at = now() WHERE id = $1`, communityID); err != nil {
			return fmt.Errorf("store: unable to claim community: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, 'owner')
			ON CONFLICT (community_id, user_id) DO UPDATE SET role = 'owner'`, communityID, userID); err != nil {
			return checkViolation(err, "member")
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "community.claim", Target: c.Name,
			Details: withBeforeAfter(details, map[string]any{"provisional": true}, map[string]any{"provisional": false, "owner": userID})})
	})
}

// PortalUserInfo is a user as the users page lists them.
type PortalUserInfo struct {
	User       PortalUser
	Identities []Identity
	LastSignIn time.Time // zero when never
	Sessions   int       // live session rows
}

// PortalUsers lists every portal user, super-admins first. The last
// sign-in comes from the audit log, which keeps it after sessions end.
func (s *Store) PortalUsers(ctx context.Context) ([]PortalUserInfo, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+portalUserColumns+`,
		coalesce((SELECT array_agg(i.platform ORDER BY i.platform, i.platform_user_id) FROM portal_identities i WHERE i.user_id = u.id), '{}'),
		coalesce((SELECT array_agg(i.platform_user_id ORDER BY i.platform, i.platform_user_id) FROM portal_identities i WHERE i.user_id = u.id), '{}'),
		coalesce((SELECT array_agg(i.login ORDER BY i.platform, i.platform_user_id) FROM portal_identities i WHERE i.user_id = u.id), '{}'),
		(SELECT max(a.at) FROM audit_log a WHERE a.actor = 'portal:' || u.id::text AND a.action = 'portal.signin'),
		(SELECT count(*) FROM portal_sessions ps WHERE ps.user_id = u.id)
		FROM portal_users u
		ORDER BY u.super_admin DESC, lower(u.display_name), u.id`)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list portal users: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PortalUserInfo, error) {
		var (
			pu                     PortalUserInfo
			platforms, ids, logins []string
			last                   *time.Time
		)
		err := r.Scan(&pu.User.ID, &pu.User.DisplayName, &pu.User.SuperAdmin, &pu.User.Disabled, &pu.User.CreatedAt,
			&platforms, &ids, &logins, &last, &pu.Sessions)
		for i := range platforms {
			pu.Identities = append(pu.Identities, Identity{Platform: platforms[i], PlatformUserID: ids[i], Login: logins[i]})
		}
		if last != nil {
			pu.LastSignIn = *last
		}
		return pu, err
	})
}

// SetSuperAdmin grants or revokes a user's super-admin flag, audited.
// Revoking the last enabled super-admin is refused with ErrLastSuperAdmin.
func (s *Store) SetSuperAdmin(ctx context.Context, actor, userID string, on bool, details map[string]any) error {
	return s.changeUser(ctx, actor, userID, "user.super_admin", details, func(tx pgx.Tx, u PortalUser) (bool, bool, error) {
		if !on && u.SuperAdmin && !u.Disabled {
			if err := lastSuperAdmin(ctx, tx); err != nil {
				return false, false, err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE portal_users SET super_admin = $2 WHERE id = $1`, userID, on)
		return u.SuperAdmin, on, err
	})
}

// SetUserDisabled disables or enables a user, audited. Disabling ends the
// user's sessions in the same transaction, so they are signed out at once;
// disabling the last enabled super-admin is refused with ErrLastSuperAdmin.
func (s *Store) SetUserDisabled(ctx context.Context, actor, userID string, disabled bool, details map[string]any) error {
	return s.changeUser(ctx, actor, userID, "user.disabled", details, func(tx pgx.Tx, u PortalUser) (bool, bool, error) {
		if disabled && u.SuperAdmin && !u.Disabled {
			if err := lastSuperAdmin(ctx, tx); err != nil {
				return false, false, err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE portal_users SET disabled = $2 WHERE id = $1`, userID, disabled); err != nil {
			return false, false, err
		}
		if disabled {
			if _, err := tx.Exec(ctx, `DELETE FROM portal_sessions WHERE user_id = $1`, userID); err != nil {
				return false, false, err
			}
		}
		return u.Disabled, disabled, nil
	})
}

// changeUser locks the user, applies change and audits its before/after
// (no community: user changes are site-wide).
func (s *Store) changeUser(ctx context.Context, actor, userID, action string, details map[string]any,
	change func(pgx.Tx, PortalUser) (before, after bool, err error)) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		u, err := scanPortalUser(tx.QueryRow(ctx, `SELECT `+portalUserColumns+` FROM portal_users u WHERE u.id = $1 FOR UPDATE`, userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: portal user %s", ErrNotFound, userID)
		}
		if err != nil {
			return fmt.Errorf("store: unable to read portal user %s: %w", userID, err)
		}
		before, after, err := change(tx, u)
		if err != nil {
			if errors.Is(err, ErrLastSuperAdmin) {
				return err
			}
			return fmt.Errorf("store: unable to change portal user %s: %w", userID, err)
		}
		d := withBeforeAfter(details, before, after)
		d["user"] = u.DisplayName
		return s.Audit(ctx, tx, AuditEntry{Actor: actor, Action: action, Target: userID, Details: d})
	})
}

// lastSuperAdmin fails when at most one enabled super-admin exists. The
// rows are locked so two super-admins revoking each other at once cannot
// both pass the count.
func lastSuperAdmin(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT id FROM portal_users WHERE super_admin AND NOT disabled FOR UPDATE`)
	if err != nil {
		return fmt.Errorf("store: unable to count super-admins: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store: unable to count super-admins: %w", err)
	}
	if len(ids) <= 1 {
		return ErrLastSuperAdmin
	}
	return nil
}

// AuditFilter selects site-wide audit entries.
type AuditFilter struct {
	ActionPrefix string // "" for all
	Actor        string // exact; "" for all
	Before       int64  // entries with a smaller id (the next page); 0 for the newest
	Limit        int
}

// SiteAudit lists audit entries of every community and none, newest first,
// a page at a time: more reports another page after this one.
func (s *Store) SiteAudit(ctx context.Context, f AuditFilter) (entries []AuditEntry, more bool, err error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	// left() rather than LIKE, so a % or _ in the prefix means itself.
	rows, err := s.read.Query(ctx, `
		SELECT id, coalesce(community_id::text, ''), actor, action, target, details, at
		FROM audit_log
		WHERE ($1 = '' OR left(action, length($1)) = $1) AND ($2 = '' OR actor = $2) AND ($3 = 0 OR id < $3)
		ORDER BY id DESC LIMIT $4`, f.ActionPrefix, f.Actor, f.Before, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("store: unable to read the site audit log: %w", err)
	}
	entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.CommunityID, &e.Actor, &e.Action, &e.Target, &e.Details, &e.At)
		return e, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: unable to read audit entry: %w", err)
	}
	if len(entries) > f.Limit {
		return entries[:f.Limit], true, nil
	}
	return entries, false, nil
}
