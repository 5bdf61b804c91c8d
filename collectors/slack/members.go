package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// OpMember is the member lookup served on wb.api.slack.member.
const OpMember = "member"

// The users.list cache: a name lookup reads the whole workspace (Slack
// has no search by name), and users.list is a tier 2 method (about 20
// calls a minute), so a list is reused for a few minutes. It is bounded
// in teams and in users per team; a larger workspace is listed for each
// lookup rather than kept.
const (
	memberListTTL = 3 * time.Minute
	// memberListRecheck is the age past which a name that is not in the
	// list is looked for in a new one.
	memberListRecheck  = 30 * time.Second
	memberListTeams    = 16
	memberListMaxUsers = 20000
	memberListPageSize = 200
	// memberListBudget bounds one listing, which outlives the request
	// that started it so that concurrent lookups can share it.
	memberListBudget = 30 * time.Second
)

// slackbotID is Slackbot's user id: it is not flagged is_bot.
const slackbotID = "USLACKBOT"

// APIMember is the data of a member answer (the field names of
// twitch.APIUser, so that callers read every platform alike).
type APIMember = collectors.APIMember

// MemberDirectoryConfig configures a MemberDirectory.
type MemberDirectoryConfig struct {
	// APIURL is the Web API base; "" means Slack's own.
	APIURL     string
	Workspaces Workspaces
	HTTPClient *http.Client
	Now        func() time.Time
}

// MemberDirectory finds a workspace's members by id (users.info) or name
// (users.list, cached per team), with the workspace's bot token.
type MemberDirectory struct {
	apiURL     string
	workspaces Workspaces
	httpClient *http.Client
	now        func() time.Time

	mu      sync.Mutex
	lists   map[string]memberList // by team
	listing map[string]*listCall  // listings in flight, by team
}

// listedUser is what a name lookup keeps of a users.list member.
type listedUser struct {
	id, name, displayName, realName string
}

type memberList struct {
	users   []listedUser
	fetched time.Time
}

type listCall struct {
	done    chan struct{}
	users   []listedUser
	fetched time.Time
	apiErr  *schemas.APIError
}

// NewMemberDirectory makes a MemberDirectory.
func NewMemberDirectory(cfg MemberDirectoryConfig) (*MemberDirectory, error) {
	if cfg.Workspaces == nil {
		return nil, errors.New("slack: the member directory needs Workspaces")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemberDirectory{apiURL: normalizeAPIURL(cfg.APIURL), workspaces: cfg.Workspaces, httpClient: cfg.HTTPClient,
		now: cfg.Now, lists: map[string]memberList{}, listing: map[string]*listCall{}}, nil
}

// APIConfig configures ServeAPI.
type APIConfig struct {
	Conn    *natsx.Conn
	Members *MemberDirectory
	Logger  *slog.Logger
}

// ServeAPI answers member lookups over wb.api.slack.* until ctx ends.
func ServeAPI(ctx context.Context, cfg APIConfig) error {
	if cfg.Members == nil {
		return errors.New("slack: the API needs the member directory")
	}
	return collectors.ServeAPI(ctx, collectors.APIServerConfig{
		Conn: cfg.Conn, Platform: schemas.PlatformSlack, Logger: cfg.Logger,
		Ops: map[string]collectors.APIOp{
			OpMember: func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
				return cfg.Members.Member(ctx, args)
			},
		},
	})
}

var (
	teamIDRE = regexp.MustCompile(`^[TE][A-Z0-9]{2,20}$`)
	userIDRE = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	// bareUserIDRE is an id typed without a mention: long enough that a
	// name is unlikely to look like one (names are lower case anyway).
	bareUserIDRE = regexp.MustCompile(`^[UW][A-Z0-9]{7,20}$`)
)

// parseMemberName reads what a user typed to name someone: a mention
// (<@U…> or <@U…|name>) or a bare id gives id; otherwise name, without a
// leading @. A bare id also comes back as name, in case it is one.
func parseMemberName(s string) (id, name string) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "<@"); ok {
		if inner, ok = strings.CutSuffix(inner, ">"); ok {
			inner, _, _ = strings.Cut(inner, "|")
			if userIDRE.MatchString(inner) {
				return inner, ""
			}
			return "", ""
		}
	}
	if bareUserIDRE.MatchString(s) {
		return s, s
	}
	return "", strings.TrimSpace(strings.TrimPrefix(s, "@"))
}

// Member finds a workspace member by args.user_id or args.name (see
// OpMember).
func (d *MemberDirectory) Member(ctx context.Context, args map[string]string) (*APIMember, *schemas.APIError) {
	return collectors.MemberFinder{
		Platform: "Slack", Server: "a Slack workspace (team) id",
		ValidServer: teamIDRE.MatchString, ValidUser: userIDRE.MatchString, Parse: parseMemberName,
		ByID: d.memberByID, ByName: d.memberByName,
	}.Find(ctx, args)
}

// memberByName finds a member of the workspace by name, from its (cached)
// user list.
func (d *MemberDirectory) memberByName(ctx context.Context, team, name string) (*APIMember, *schemas.APIError) {
	users, fetched, apiErr := d.list(ctx, team, memberListTTL)
	if apiErr != nil {
		return nil, apiErr
	}
	m, apiErr := pickMember(users, name)
	if apiErr != nil && apiErr.Code == "not_found" && d.now().Sub(fetched) > memberListRecheck {
		// Someone who just joined is who a lookup is most likely about:
		// an older list is read again before answering not_found.
		if users, _, listErr := d.list(ctx, team, memberListRecheck); listErr == nil {
			m, apiErr = pickMember(users, name)
		}
	}
	return m, apiErr
}

func (d *MemberDirectory) client(ctx context.Context, team string) (*slack.Client, *schemas.APIError) {
	token, err := d.workspaces.BotToken(ctx, team)
	if errors.Is(err, ErrNotInstalled) {
		return nil, &schemas.APIError{Code: "unauthorized", Message: "WaddleBot is not installed in that Slack workspace"}
	}
	if err != nil {
		return nil, &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("slack: unable to read the bot token of %s: %v", team, err)}
	}
	return slack.New(token, slack.OptionAPIURL(d.apiURL), slack.OptionHTTPClient(d.httpClient)), nil
}

func (d *MemberDirectory) memberByID(ctx context.Context, team, userID string) (*APIMember, *schemas.APIError) {
	api, apiErr := d.client(ctx, team)
	if apiErr != nil {
		return nil, apiErr
	}
	u, err := api.GetUserInfoContext(ctx, userID)
	if err != nil {
		return nil, lookupError("users.info", err)
	}
	switch {
	case u.Deleted:
		return nil, &schemas.APIError{Code: "not_found", Message: "that Slack account is deactivated"}
	case u.IsBot || u.ID == slackbotID:
		return nil, &schemas.APIError{Code: "not_found", Message: "that is a bot, not a person"}
	case u.TeamID != "" && u.TeamID != team && !slices.Contains(u.Enterprise.Teams, team):
		// users.info answers for anyone the token can see (shared
		// channels, an Enterprise Grid org), not only the workspace's.
		return nil, &schemas.APIError{Code: "not_found", Message: "that user is not a member of this Slack workspace"}
	}
	return listed(u).answer(), nil
}

func listed(u *slack.User) listedUser {
	realName := strings.TrimSpace(u.Profile.RealName)
	if realName == "" {
		realName = strings.TrimSpace(u.RealName)
	}
	return listedUser{id: u.ID, name: u.Name, displayName: strings.TrimSpace(u.Profile.DisplayName), realName: realName}
}

func (u listedUser) answer() *APIMember {
	display := u.displayName
	if display == "" {
		display = u.realName
	}
	if display == "" {
		display = u.name
	}
	return &APIMember{ID: u.id, Login: u.name, DisplayName: display}
}

// pickMember picks the user name names exactly (case-insensitively): the
// username wins, since it is unique; a display or real name shared by
// several users is ambiguous.
func pickMember(users []listedUser, name string) (*APIMember, *schemas.APIError) {
	var byName, byDisplay []listedUser
	for _, u := range users {
		switch {
		case strings.EqualFold(u.name, name):
			byName = append(byName, u)
		case strings.EqualFold(u.displayName, name) || strings.EqualFold(u.realName, name):
			byDisplay = append(byDisplay, u)
		}
	}
	for _, matches := range [][]listedUser{byName, byDisplay} {
		switch len(matches) {
		case 0:
			continue
		case 1:
			return matches[0].answer(), nil
		default:
			return nil, &schemas.APIError{Code: "invalid",
				Message: fmt.Sprintf("the name %q is ambiguous: several people in this workspace go by it; mention the user (@them) instead", name)}
		}
	}
	return nil, &schemas.APIError{Code: "not_found", Message: fmt.Sprintf("nobody in this Slack workspace is called %q", name)}
}

// list returns the team's people (no bots, no deactivated accounts) and
// when they were listed, from the cache when it is younger than maxAge.
// Concurrent lookups of a team share one listing.
func (d *MemberDirectory) list(ctx context.Context, team string, maxAge time.Duration) ([]listedUser, time.Time, *schemas.APIError) {
	d.mu.Lock()
	if l, ok := d.lists[team]; ok && d.now().Before(l.fetched.Add(maxAge)) {
		d.mu.Unlock()
		return l.users, l.fetched, nil
	}
	call, ok := d.listing[team]
	if !ok {
		call = &listCall{done: make(chan struct{})}
		d.listing[team] = call
		listCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), memberListBudget)
		go func() {
			defer cancel()
			users, apiErr := d.fetchList(listCtx, team)
			fetched := d.now()
			d.mu.Lock()
			if apiErr == nil && len(users) <= memberListMaxUsers {
				d.storeLocked(team, memberList{users: users, fetched: fetched})
			}
			delete(d.listing, team)
			d.mu.Unlock()
			call.users, call.fetched, call.apiErr = users, fetched, apiErr
			close(call.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-call.done:
		return call.users, call.fetched, call.apiErr
	case <-ctx.Done():
		return nil, time.Time{}, &schemas.APIError{Code: "unavailable", Message: "users.list: Slack did not answer in time"}
	}
}

// storeLocked keeps l, first dropping expired lists (and, if that is not
// enough, arbitrary ones) when the cache is full.
func (d *MemberDirectory) storeLocked(team string, l memberList) {
	if _, ok := d.lists[team]; !ok && len(d.lists) >= memberListTeams {
		now := d.now()
		for k, e := range d.lists {
			if now.After(e.fetched.Add(memberListTTL)) {
				delete(d.lists, k)
			}
		}
		for k := range d.lists {
			if len(d.lists) < memberListTeams {
				break
			}
			delete(d.lists, k)
		}
	}
	d.lists[team] = l
}

func (d *MemberDirectory) fetchList(ctx context.Context, team string) ([]listedUser, *schemas.APIError) {
	api, apiErr := d.client(ctx, team)
	if apiErr != nil {
		return nil, apiErr
	}
	var users []listedUser
	page := api.GetUsersPaginated(slack.GetUsersOptionLimit(memberListPageSize), slack.GetUsersOptionTeamID(team))
	for {
		var err error
		page, err = page.Next(ctx)
		if page.Done(err) {
			return users, nil
		}
		if err != nil {
			return nil, lookupError("users.list", err)
		}
		for i := range page.Users {
			u := &page.Users[i]
			if u.Deleted || u.IsBot || u.ID == slackbotID {
				continue
			}
			users = append(users, listed(u))
		}
	}
}

// Slack error codes (the "error" of an ok:false answer) that mean the
// token cannot do this.
var unauthorizedErrors = []string{"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
	"no_permission", "missing_scope", "not_allowed_token_type", "team_access_not_granted", "ekm_access_denied"}

// lookupError turns a failed Web API call into the API's typed error.
func lookupError(method string, err error) *schemas.APIError {
	var rle *slack.RateLimitedError
	var sce slack.StatusCodeError
	var ser slack.SlackErrorResponse
	var ue *url.Error
	switch {
	case errors.As(err, &rle):
		return &schemas.APIError{Code: "rate_limited", Message: fmt.Sprintf("%s: Slack is rate limiting lookups; try again in %s", method, rle.RetryAfter)}
	case errors.As(err, &ser):
		switch {
		case ser.Err == "user_not_found" || ser.Err == "users_not_found":
			return &schemas.APIError{Code: "not_found", Message: "no such user in this Slack workspace"}
		case slices.Contains(unauthorizedErrors, ser.Err):
			return &schemas.APIError{Code: "unauthorized", Message: method + ": " + ser.Err}
		case ser.Err == "ratelimited":
			return &schemas.APIError{Code: "rate_limited", Message: method + ": " + ser.Err}
		}
		return &schemas.APIError{Code: "unavailable", Message: method + ": " + ser.Err}
	case errors.As(err, &sce):
		switch {
		case sce.Code == http.StatusUnauthorized || sce.Code == http.StatusForbidden:
			return &schemas.APIError{Code: "unauthorized", Message: fmt.Sprintf("%s: HTTP %d", method, sce.Code)}
		case sce.Code == http.StatusTooManyRequests:
			return &schemas.APIError{Code: "rate_limited", Message: fmt.Sprintf("%s: HTTP %d", method, sce.Code)}
		}
		return &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("%s: HTTP %d", method, sce.Code)}
	case errors.As(err, &ue):
		// The URL names the API base only: the token travels in a header
		// or the body.
		return &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("slack: unable to call %s: %v", method, ue.Err)}
	}
	return &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("slack: unable to call %s: %v", method, err)}
}
