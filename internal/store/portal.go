package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/schemas"
)

// Community member roles, strongest first.
const (
	RoleOwner     = "owner"
	RoleAdmin     = "admin"
	RoleModerator = "moderator"
)

// RoleRank orders roles: a higher rank may do what a lower one may; 0 is no
// role at all.
func RoleRank(role string) int {
	switch role {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleModerator:
		return 1
	}
	return 0
}

// PortalUser is someone who signs in to the portal.
type PortalUser struct {
	ID          string
	DisplayName string
	SuperAdmin  bool
	Disabled    bool
	CreatedAt   time.Time
}

// Identity is a platform account a portal user signs in with.
type Identity struct {
	Platform       string
	PlatformUserID string
	Login          string
}

// String is the "platform:user id" form the super-admin list uses.
func (i Identity) String() string { return i.Platform + ":" + i.PlatformUserID }

const portalUserColumns = `u.id::text, u.display_name, u.super_admin, u.disabled, u.created_at`

func scanPortalUser(row pgx.Row) (PortalUser, error) {
	var u PortalUser
	err := row.Scan(&u.ID, &u.DisplayName, &u.SuperAdmin, &u.Disabled, &u.CreatedAt)
	return u, err
}

// SignInPortalUser finds or creates the user of a platform account that
// just proved itself, refreshing its login and display name. superAdmin
// only ever grants: a bootstrap super-admin removed from the environment
// keeps the role until another super-admin takes it away, so an operator
// typo cannot lock everyone out.
func (s *Store) SignInPortalUser(ctx context.Context, id Identity, displayName string, superAdmin bool) (PortalUser, error) {
	var u PortalUser
	err := s.retryConflict(ctx, func(tx pgx.Tx) error {
		userID, err := ensureIdentity(ctx, tx, id, displayName)
		if err != nil {
			return err
		}
		u, err = scanPortalUser(tx.QueryRow(ctx, `
			UPDATE portal_users u SET display_name = CASE WHEN $2 = '' THEN u.display_name ELSE $2 END,
			super_admin = u.super_admin OR $3
			WHERE u.id = $1 RETURNING `+portalUserColumns, userID, displayName, superAdmin))
		if err != nil {
			return fmt.Errorf("store: unable to update portal user: %w", err)
		}
		return nil
	})
	return u, err
}

// EnsurePortalUser returns the user of a platform account, creating one
// that has not signed in yet: an owner may add someone to a community
// before their first visit.
func (s *Store) EnsurePortalUser(ctx context.Context, id Identity) (PortalUser, error) {
	var u PortalUser
	err := s.retryConflict(ctx, func(tx pgx.Tx) error {
		userID, err := ensureIdentity(ctx, tx, id, "")
		if err != nil {
			return err
		}
		u, err = scanPortalUser(tx.QueryRow(ctx, `SELECT `+portalUserColumns+` FROM portal_users u WHERE u.id = $1`, userID))
		if err != nil {
			return fmt.Errorf("store: unable to read portal user: %w", err)
		}
		return nil
	})
	return u, err
}

// retryConflict runs fn in a transaction once more when it lost a race to
// create the same identity: the second run finds the winner's row.
func (s *Store) retryConflict(ctx context.Context, fn func(pgx.Tx) error) error {
	err := s.InTx(ctx, fn)
	if errors.Is(err, ErrConflict) {
		err = s.InTx(ctx, fn)
	}
	return err
}

func ensureIdentity(ctx context.Context, tx pgx.Tx, id Identity, displayName string) (string, error) {
	if id.Platform == "" || id.PlatformUserID == "" {
		return "", fmt.Errorf("%w: identity needs a platform and a user id", ErrConflict)
	}
	var userID string
	err := tx.QueryRow(ctx, `
		UPDATE portal_identities SET login = CASE WHEN $3 = '' THEN login ELSE $3 END
		WHERE platform = $1 AND platform_user_id = $2 RETURNING user_id::text`,
		id.Platform, id.PlatformUserID, id.Login).Scan(&userID)
	if err == nil {
		return userID, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("store: unable to read identity: %w", err)
	}
	if displayName == "" {
		displayName = id.Login
	}
	if displayName == "" {
		displayName = id.String()
	}
	userID = uuid.NewString()
	if _, err := tx.Exec(ctx, `INSERT INTO portal_users (id, display_name) VALUES ($1, $2)`, userID, displayName); err != nil {
		return "", checkViolation(err, "portal user")
	}
	// A concurrent first sign-in of the same account loses here, and
	// retryConflict runs it again as a returning one.
	if _, err := tx.Exec(ctx, `INSERT INTO portal_identities (platform, platform_user_id, login, user_id) VALUES ($1, $2, $3, $4)`,
		id.Platform, id.PlatformUserID, id.Login, userID); err != nil {
		return "", checkViolation(err, "identity")
	}
	return userID, nil
}

// PortalUser reads one user.
func (s *Store) PortalUser(ctx context.Context, id string) (PortalUser, error) {
	u, err := scanPortalUser(s.pool.QueryRow(ctx, `SELECT `+portalUserColumns+` FROM portal_users u WHERE u.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return PortalUser{}, fmt.Errorf("%w: portal user %s", ErrNotFound, id)
	}
	if err != nil {
		return PortalUser{}, fmt.Errorf("store: unable to read portal user %s: %w", id, err)
	}
	return u, nil
}

// Identities lists a user's platform accounts.
func (s *Store) Identities(ctx context.Context, userID string) ([]Identity, error) {
	rows, err := s.pool.Query(ctx, `SELECT platform, platform_user_id, login FROM portal_identities WHERE user_id = $1 ORDER BY platform, platform_user_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list identities: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Identity, error) {
		var i Identity
		err := r.Scan(&i.Platform, &i.PlatformUserID, &i.Login)
		return i, err
	})
}

// PortalSession is a signed-in browser.
type PortalSession struct {
	User      PortalUser
	CSRFToken string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	IP        string
	UserAgent string
}

// NewPortalSession is what starting a session takes. Times come from the
// caller, so the portal's clock (a fake one in tests) decides expiry.
type NewPortalSession struct {
	UserID    string
	Now       time.Time
	ExpiresAt time.Time // the absolute limit
	IP        string
	UserAgent string
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func randomToken() (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("store: unable to make a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// CreatePortalSession starts a session and returns its token (for the
// cookie, never stored) and CSRF token. Sessions past their absolute limit
// are swept in the same statement.
func (s *Store) CreatePortalSession(ctx context.Context, n NewPortalSession) (token, csrf string, err error) {
	if token, err = randomToken(); err != nil {
		return "", "", err
	}
	if csrf, err = randomToken(); err != nil {
		return "", "", err
	}
	if _, err := s.pool.Exec(ctx, `
		WITH swept AS (DELETE FROM portal_sessions WHERE expires_at < $2)
		INSERT INTO portal_sessions (token_hash, user_id, csrf_token, created_at, last_seen, expires_at, ip, user_agent)
		VALUES ($1, $3, $4, $2, $2, $5, $6, $7)`,
		hashToken(token), n.Now, n.UserID, csrf, n.ExpiresAt, n.IP, n.UserAgent); err != nil {
		return "", "", checkViolation(err, "portal session")
	}
	return token, csrf, nil
}

// TouchPortalSession returns the live session of token and marks it seen
// at now (in the table, to the minute). A session idle longer than idle, past its absolute limit, or of
// a disabled user is deleted and reported as ErrNotFound.
func (s *Store) TouchPortalSession(ctx context.Context, token string, now time.Time, idle time.Duration) (PortalSession, error) {
	if token == "" {
		return PortalSession{}, fmt.Errorf("%w: no session token", ErrNotFound)
	}
	var ps PortalSession
	// last_seen is written at most once a minute: every page view of a
	// signed-in user passes here, and an idle limit of days does not need
	// a row write per click.
	err := s.pool.QueryRow(ctx, `
		WITH live AS (
			SELECT ps.token_hash FROM portal_sessions ps JOIN portal_users u ON u.id = ps.user_id
			WHERE ps.token_hash = $1 AND NOT u.disabled
			AND ps.expires_at > $2 AND ps.last_seen > $2 - $3::bigint * interval '1 microsecond'
		), touched AS (
			UPDATE portal_sessions SET last_seen = $2
			WHERE token_hash IN (SELECT token_hash FROM live) AND last_seen < $2 - interval '1 minute'
		)
		SELECT `+portalUserColumns+`, ps.csrf_token, ps.created_at, greatest(ps.last_seen, $2), ps.expires_at, ps.ip, ps.user_agent
		FROM portal_sessions ps JOIN live USING (token_hash) JOIN portal_users u ON u.id = ps.user_id`,
		hashToken(token), now, idle.Microseconds()).Scan(
		&ps.User.ID, &ps.User.DisplayName, &ps.User.SuperAdmin, &ps.User.Disabled, &ps.User.CreatedAt,
		&ps.CSRFToken, &ps.CreatedAt, &ps.LastSeen, &ps.ExpiresAt, &ps.IP, &ps.UserAgent)
	if errors.Is(err, pgx.ErrNoRows) {
		// Gone, expired or disabled: whatever is left of it goes.
		_ = s.DeletePortalSession(ctx, token)
		return PortalSession{}, fmt.Errorf("%w: portal session (unknown or expired)", ErrNotFound)
	}
	if err != nil {
		return PortalSession{}, fmt.Errorf("store: unable to read portal session: %w", err)
	}
	return ps, nil
}

// DeletePortalSession ends a session (sign-out).
func (s *Store) DeletePortalSession(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM portal_sessions WHERE token_hash = $1`, hashToken(token)); err != nil {
		return fmt.Errorf("store: unable to delete portal session: %w", err)
	}
	return nil
}

// Member is a user's role in a community.
type Member struct {
	CommunityID string
	User        PortalUser
	Role        string
	Identities  []Identity
}

// MemberRole is a user's role in a community, "" when none.
func (s *Store) MemberRole(ctx context.Context, communityID, userID string) (string, error) {
	var role string
	err := s.pool.QueryRow(ctx, `SELECT role FROM community_members WHERE community_id = $1 AND user_id = $2`, communityID, userID).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: unable to read membership: %w", err)
	}
	return role, nil
}

// Members lists a community's members with their platform accounts,
// strongest role first.
func (s *Store) Members(ctx context.Context, communityID string) ([]Member, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+portalUserColumns+`, m.role,
		coalesce(array_agg(i.platform ORDER BY i.platform, i.platform_user_id) FILTER (WHERE i.platform IS NOT NULL), '{}'),
		coalesce(array_agg(i.platform_user_id ORDER BY i.platform, i.platform_user_id) FILTER (WHERE i.platform IS NOT NULL), '{}'),
		coalesce(array_agg(i.login ORDER BY i.platform, i.platform_user_id) FILTER (WHERE i.platform IS NOT NULL), '{}')
		FROM community_members m JOIN portal_users u ON u.id = m.user_id
		LEFT JOIN portal_identities i ON i.user_id = u.id
		WHERE m.community_id = $1
		GROUP BY u.id, m.role
		ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.display_name`, communityID)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list members: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Member, error) {
		m := Member{CommunityID: communityID}
		var platforms, ids, logins []string
		err := r.Scan(&m.User.ID, &m.User.DisplayName, &m.User.SuperAdmin, &m.User.Disabled, &m.User.CreatedAt, &m.Role,
			&platforms, &ids, &logins)
		for i := range platforms {
			m.Identities = append(m.Identities, Identity{Platform: platforms[i], PlatformUserID: ids[i], Login: logins[i]})
		}
		return m, err
	})
}

// SetMember gives a user a role in a community (adding them when new),
// audited with the role before and after.
func (s *Store) SetMember(ctx context.Context, actor, communityID, userID, role string, details map[string]any) error {
	if RoleRank(role) == 0 {
		return fmt.Errorf("%w: unknown role %q", ErrConflict, role)
	}
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT role FROM community_members WHERE community_id = $1 AND user_id = $2 FOR UPDATE`,
			communityID, userID).Scan(&before)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: unable to read membership: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, $3)
			ON CONFLICT (community_id, user_id) DO UPDATE SET role = EXCLUDED.role`, communityID, userID, role); err != nil {
			return checkViolation(err, "member")
		}
		action := "member.add"
		if before != "" {
			action = "member.role"
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: action, Target: userID,
			Details: withBeforeAfter(details, before, role)})
	})
}

// RemoveMember takes a user out of a community, audited.
func (s *Store) RemoveMember(ctx context.Context, actor, communityID, userID string, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `DELETE FROM community_members WHERE community_id = $1 AND user_id = $2 RETURNING role`,
			communityID, userID).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: member %s of %s", ErrNotFound, userID, communityID)
		}
		if err != nil {
			return fmt.Errorf("store: unable to remove member: %w", err)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: communityID, Actor: actor, Action: "member.remove", Target: userID,
			Details: withBeforeAfter(details, before, "")})
	})
}

func withBeforeAfter(details map[string]any, before, after any) map[string]any {
	out := map[string]any{}
	for k, v := range details {
		out[k] = v
	}
	out["before"] = before
	out["after"] = after
	return out
}

// CommunitiesOf lists the communities a user is a member of with their
// role; all communities (role "") when all is set, for a super-admin.
func (s *Store) CommunitiesOf(ctx context.Context, userID string, all bool) ([]CommunityRole, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+communityColumns+`, coalesce(m.role, '')
		FROM communities c LEFT JOIN community_members m ON m.community_id = c.id AND m.user_id = $1
		WHERE $2 OR m.user_id IS NOT NULL
		ORDER BY lower(c.name), c.id`, userID, all)
	if err != nil {
		return nil, fmt.Errorf("store: unable to list communities: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CommunityRole, error) {
		var cr CommunityRole
		err := r.Scan(&cr.Community.ID, &cr.Community.Name, &cr.Community.Prefix, &cr.Community.TimeZone,
			&cr.Community.Locale, &cr.Community.Provisional, &cr.Role)
		return cr, err
	})
}

// CommunityRole is a community with the role of whoever asked.
type CommunityRole struct {
	Community schemas.Community
	Role      string
}

// CreateOwnedCommunity creates a community with ownerID as its owner, both
// audited in one transaction with the settings it was created with.
func (s *Store) CreateOwnedCommunity(ctx context.Context, actor, ownerID string, n NewCommunity, details map[string]any) (schemas.Community, error) {
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
		if _, err := tx.Exec(ctx, `INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, 'owner')`, id, ownerID); err != nil {
			return checkViolation(err, "member")
		}
		after := map[string]any{"name": n.Name, "prefix": n.Prefix, "time_zone": n.TimeZone, "locale": n.Locale, "owner": ownerID}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: id, Actor: actor, Action: "community.create", Target: n.Name,
			Details: withBeforeAfter(details, nil, after)})
	})
	if err != nil {
		return schemas.Community{}, err
	}
	return s.Community(ctx, id)
}

// ChangeCommunity updates a community's name, prefix, time zone and locale,
// audited with the settings before and after.
func (s *Store) ChangeCommunity(ctx context.Context, actor string, c schemas.Community, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		before, err := scanCommunity(tx.QueryRow(ctx, `SELECT `+communityColumns+` FROM communities c WHERE c.id = $1 FOR UPDATE`, c.ID))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: community %s", ErrNotFound, c.ID)
		}
		if err != nil {
			return fmt.Errorf("store: unable to read community %s: %w", c.ID, err)
		}
		// A community someone configured by hand is no longer provisional.
		if _, err := tx.Exec(ctx, `UPDATE communities SET name = $2, prefix = $3, time_zone = $4, locale = $5, provisional = false, updated_at = now() WHERE id = $1`,
			c.ID, c.Name, c.Prefix, c.TimeZone, c.Locale); err != nil {
			return checkViolation(err, "community")
		}
		settings := func(x schemas.Community) map[string]any {
			return map[string]any{"name": x.Name, "prefix": x.Prefix, "time_zone": x.TimeZone, "locale": x.Locale}
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: c.ID, Actor: actor, Action: "community.update", Target: c.Name,
			Details: withBeforeAfter(details, settings(before), settings(c))})
	})
}

// DeleteCommunity removes a community with everything that belongs to it
// (channels, settings, members). Its audit log stays, and the deletion is
// recorded in it with what the community was.
func (s *Store) DeleteCommunity(ctx context.Context, actor, id string, details map[string]any) error {
	return s.InTx(ctx, func(tx pgx.Tx) error {
		before, err := scanCommunity(tx.QueryRow(ctx, `DELETE FROM communities c WHERE c.id = $1 RETURNING `+communityColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: community %s", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("store: unable to delete community %s: %w", id, err)
		}
		return s.Audit(ctx, tx, AuditEntry{CommunityID: id, Actor: actor, Action: "community.delete", Target: before.Name,
			Details: withBeforeAfter(details, map[string]any{"name": before.Name, "prefix": before.Prefix,
				"time_zone": before.TimeZone, "locale": before.Locale}, nil)})
	})
}
