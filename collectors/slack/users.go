package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// How long a user's roles are trusted, how long a lookup may hold up an
// event, and how many users are remembered.
const (
	userRolesTTL        = 10 * time.Minute
	userRolesRetryAfter = time.Minute // after a failed users.info, so Slack is not asked per message
	userRolesBudget     = 5 * time.Second
	// userRolesWait is how long an event waits for a user never seen
	// before: the Events API must be answered within 3 seconds, and a
	// member is the safe answer when Slack is slow.
	userRolesWait    = time.Second
	userRolesEntries = 20000
)

// UserRoles tells a Slack user's roles in a workspace.
type UserRoles interface {
	Roles(ctx context.Context, teamID, userID string) []schemas.Role
}

// UserDirectoryConfig configures a UserDirectory.
type UserDirectoryConfig struct {
	// APIURL is the Web API base (users.info); "" means Slack's own.
	APIURL     string
	Workspaces Workspaces
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
}

// UserDirectory reads users' roles from users.info (bot scope users:read):
// a workspace owner is the broadcaster, an admin a moderator, everyone
// else a member. Answers are cached per team and user.
type UserDirectory struct {
	apiURL     string
	workspaces Workspaces
	httpClient *http.Client
	log        *slog.Logger
	now        func() time.Time

	mu      sync.Mutex
	entries map[string]userRolesEntry // by team + "/" + user
	lookups flights
	// warned is set once a failed lookup was logged as a warning; later
	// failures are logged at debug level, so a missing scope does not log
	// a line per user.
	warned atomic.Bool
}

type userRolesEntry struct {
	roles   []schemas.Role
	checkAt time.Time
}

var memberOnly = []schemas.Role{schemas.RoleMember}

// NewUserDirectory makes a UserDirectory.
func NewUserDirectory(cfg UserDirectoryConfig) (*UserDirectory, error) {
	if cfg.Workspaces == nil {
		return nil, errors.New("slack: the user directory needs Workspaces")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &UserDirectory{apiURL: normalizeAPIURL(cfg.APIURL), workspaces: cfg.Workspaces, httpClient: cfg.HTTPClient,
		log: cfg.Logger, now: cfg.Now, entries: map[string]userRolesEntry{}}, nil
}

// Roles returns the user's roles; member when they are not known (yet).
// A stale answer is returned while it is refreshed; a user never seen is
// waited for at most userRolesWait (and never past ctx).
func (d *UserDirectory) Roles(ctx context.Context, teamID, userID string) []schemas.Role {
	if teamID == "" || userID == "" {
		return memberOnly
	}
	key := teamID + "/" + userID
	d.mu.Lock()
	cached, ok := d.entries[key]
	d.mu.Unlock()
	if ok && d.now().Before(cached.checkAt) {
		return cached.roles
	}
	// The lookup outlives this caller: a slow answer still serves the
	// user's next message.
	lookupCtx := context.WithoutCancel(ctx)
	done := d.lookups.start(key, func() { d.refresh(lookupCtx, teamID, userID, cached) })
	if ok {
		return cached.roles
	}
	wait := time.NewTimer(userRolesWait)
	defer wait.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return memberOnly
	case <-wait.C:
		return memberOnly
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.entries[key]; ok {
		return e.roles
	}
	return memberOnly
}

func (d *UserDirectory) refresh(ctx context.Context, teamID, userID string, previous userRolesEntry) {
	ctx, cancel := context.WithTimeout(ctx, userRolesBudget)
	defer cancel()
	roles, err := d.lookup(ctx, teamID, userID)
	entry := userRolesEntry{roles: roles, checkAt: d.now().Add(userRolesTTL)}
	if err != nil {
		entry = userRolesEntry{roles: previous.roles, checkAt: d.now().Add(userRolesRetryAfter)}
		if entry.roles == nil {
			entry.roles = memberOnly
		}
		level := slog.LevelDebug
		if !errors.Is(err, ErrNotInstalled) && d.warned.CompareAndSwap(false, true) {
			level = slog.LevelWarn
		}
		d.log.Log(ctx, level, "slack: unable to read a user's roles; treated as a member (further failures are logged at debug level)",
			logging.KeyPlatform, platformName, "team", teamID, "user", userID, logging.Err(err))
	}
	d.store(teamID+"/"+userID, entry)
}

func (d *UserDirectory) lookup(ctx context.Context, teamID, userID string) ([]schemas.Role, error) {
	token, err := d.workspaces.BotToken(ctx, teamID)
	if err != nil {
		return nil, err
	}
	api := slack.New(token, slack.OptionAPIURL(d.apiURL), slack.OptionHTTPClient(d.httpClient))
	user, err := api.GetUserInfoContext(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("slack: users.info for %s in %s: %w", userID, teamID, err)
	}
	return rolesOfUser(user), nil
}

// rolesOfUser maps Slack's workspace standing onto WaddleBot's roles.
func rolesOfUser(u *slack.User) []schemas.Role {
	switch {
	case u.IsOwner || u.IsPrimaryOwner:
		return []schemas.Role{schemas.RoleBroadcaster}
	case u.IsAdmin:
		return []schemas.Role{schemas.RoleModerator}
	}
	return memberOnly
}

// store keeps entry, first dropping expired entries (and, if that is not
// enough, arbitrary ones) when the cache is full.
func (d *UserDirectory) store(key string, entry userRolesEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.entries[key]; !ok && len(d.entries) >= userRolesEntries {
		now := d.now()
		for k, e := range d.entries {
			if now.After(e.checkAt) {
				delete(d.entries, k)
			}
		}
		for k := range d.entries {
			if len(d.entries) < userRolesEntries {
				break
			}
			delete(d.entries, k)
		}
	}
	d.entries[key] = entry
}
