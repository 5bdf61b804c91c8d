package slack

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// DefaultAuthorizeURL is Slack's OAuth v2 consent page.
const DefaultAuthorizeURL = "https://slack.com/oauth/v2/authorize"

// BotScopes are the bot token scopes the install asks for, and why:
//   - app_mentions:read: app_mention events;
//   - channels:history, groups:history, im:history, mpim:history: message
//     events in public and private channels, DMs and group DMs;
//   - channels:read, groups:read: member_joined_channel events and channel
//     names (conversations.info);
//   - chat:write: chat.postMessage and chat.postEphemeral;
//   - commands: the /waddlebot slash command;
//   - users:read: user names and who owns the workspace (roles).
var BotScopes = []string{
	"app_mentions:read",
	"channels:history", "groups:history", "im:history", "mpim:history",
	"channels:read", "groups:read",
	"chat:write",
	"commands",
	"users:read",
}

// InstallConfig configures the install routes.
type InstallConfig struct {
	ClientID, ClientSecret string
	// PublicURL is where browsers reach this service; the callback is
	// PublicURL + "/connect/slack/callback", which must be a redirect URL of
	// the Slack app.
	PublicURL string
	// APIURL is the Web API base (oauth.v2.access); "" means Slack's own.
	APIURL string
	// AuthorizeURL is the consent page; "" means DefaultAuthorizeURL.
	AuthorizeURL string
	Workspaces   *WorkspaceStore
	Logger       *slog.Logger
}

// Install serves the OAuth v2 flow that adds the app to a workspace.
type Install struct {
	cfg InstallConfig
	log *slog.Logger
}

// NewInstall checks cfg.
func NewInstall(cfg InstallConfig) (*Install, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("slack: the install needs the app's client id and client secret")
	}
	if cfg.Workspaces == nil {
		return nil, errors.New("slack: the install needs Workspaces")
	}
	if u, err := url.Parse(cfg.PublicURL); err != nil || cfg.PublicURL == "" || u.Host == "" {
		return nil, errors.New("slack: the install needs a PublicURL that is an absolute URL")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	cfg.APIURL = normalizeAPIURL(cfg.APIURL)
	if cfg.AuthorizeURL == "" {
		cfg.AuthorizeURL = DefaultAuthorizeURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Install{cfg: cfg, log: cfg.Logger.With(logging.KeyPlatform, platformName, logging.KeyPart, "install")}, nil
}

// Mount adds GET /connect/slack and /connect/slack/callback. Methods are
// checked in the handlers, so any mux with Handle works.
func (i *Install) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("/connect/slack", collectors.GetOnly(i.connect))
	mux.Handle("/connect/slack/callback", collectors.GetOnly(i.callback))
}

func (i *Install) callbackURL() string { return i.cfg.PublicURL + "/connect/slack/callback" }

// stateCookie carries the OAuth state in the browser that started the
// install, so a callback link made by someone else (their state, their
// code) does not install their workspace from our browser.
const stateCookie = "waddlebot_slack_oauth_state"

// stateLifetime is how long an install link's state is good for.
const stateLifetime = 10 * time.Minute

func (i *Install) secure() bool { return strings.HasPrefix(i.cfg.PublicURL, "https://") }

// connect sends the browser to Slack's consent page with a fresh state.
func (i *Install) connect(w http.ResponseWriter, r *http.Request) {
	state, err := i.cfg.Workspaces.st.CreateOAuthState(r.Context(), schemas.PlatformSlack, "")
	if err != nil {
		i.log.Error("slack: unable to start an install", logging.Err(err))
		i.page(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	q := url.Values{}
	q.Set("client_id", i.cfg.ClientID)
	q.Set("scope", strings.Join(BotScopes, ","))
	q.Set("redirect_uri", i.callbackURL())
	q.Set("state", state)
	sep := "?"
	if strings.Contains(i.cfg.AuthorizeURL, "?") {
		sep = "&"
	}
	w.Header().Set("Cache-Control", "no-store")
	collectors.SetStateCookie(w, stateCookie, state, i.secure())
	http.Redirect(w, r, i.cfg.AuthorizeURL+sep+q.Encode(), http.StatusFound)
}

// callback checks the state, exchanges the code and saves the workspace.
func (i *Install) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if !collectors.CheckStateCookie(r, stateCookie, state) {
		// Not consumed: the state may belong to another browser whose
		// install is still under way.
		i.page(w, http.StatusBadRequest, "Link expired", "This install was not started in this browser, or its link expired. "+
			"Open the install link again in this browser.")
		return
	}
	collectors.ClearStateCookie(w, stateCookie, i.secure()) // spent either way
	if q.Get("error") != "" {
		// The state is spent either way.
		_, _ = i.cfg.Workspaces.st.TakeOAuthState(ctx, schemas.PlatformSlack, state, stateLifetime)
		i.page(w, http.StatusOK, "Not installed", "The install was cancelled on Slack ("+q.Get("error")+"), so nothing was added. "+
			"Open the install link again if that was a mistake.")
		return
	}
	_, err := i.cfg.Workspaces.st.TakeOAuthState(ctx, schemas.PlatformSlack, state, stateLifetime)
	if errors.Is(err, store.ErrNotFound) {
		i.page(w, http.StatusBadRequest, "Link expired", "This install link is unknown, expired or already used. Open the install link again.")
		return
	}
	if err != nil {
		i.log.Error("slack: unable to check OAuth state", logging.Err(err))
		i.page(w, http.StatusServiceUnavailable, "Something went wrong", "The install could not be checked. Please try again in a minute.")
		return
	}
	code := q.Get("code")
	if code == "" {
		i.page(w, http.StatusBadRequest, "Not installed", "Slack sent no authorization code. Open the install link again.")
		return
	}
	resp, err := slack.GetOAuthV2ResponseContext(ctx, i.cfg.Workspaces.httpClient, i.cfg.ClientID, i.cfg.ClientSecret,
		code, i.callbackURL(), slack.OAuthOptionAPIURL(i.cfg.APIURL))
	if err != nil {
		i.log.Warn("slack: authorization code refused", logging.Err(err))
		i.page(w, http.StatusBadGateway, "Not installed", "Slack did not accept the install ("+err.Error()+"). Open the install link again.")
		return
	}
	if resp.TokenType != "bot" {
		// Only a bot token is stored and used; anything else (a user
		// token) would act as a person.
		i.log.Warn("slack: oauth.v2.access returned no bot token", "token_type", resp.TokenType)
		i.page(w, http.StatusBadRequest, "Not installed", "Slack returned no bot token. Check that the app has a bot user and open the install link again.")
		return
	}
	if resp.Team.ID == "" || resp.AccessToken == "" {
		// An org-wide (Enterprise Grid) install names an enterprise, not a
		// team, and the bot token is per team.
		i.page(w, http.StatusBadRequest, "Not installed", "Slack returned no workspace bot token: install the app into one workspace, not an organization.")
		return
	}
	if resp.RefreshToken != "" {
		// With token rotation on, the token expires in 12 hours and nothing
		// here refreshes it.
		i.log.Warn("slack: the app has token rotation enabled; the bot token will expire", logging.KeyID, resp.Team.ID,
			"expires_in", resp.ExpiresIn)
	}
	ws := Workspace{TeamID: resp.Team.ID, TeamName: resp.Team.Name, BotUserID: resp.BotUserID, InstalledBy: resp.AuthedUser.ID}
	if err := i.cfg.Workspaces.Save(ctx, ws, resp.AccessToken); err != nil {
		i.log.Error("slack: unable to save a workspace", logging.KeyID, ws.TeamID, logging.Err(err))
		i.page(w, http.StatusServiceUnavailable, "Something went wrong", "The workspace could not be saved. Please try again in a minute.")
		return
	}
	name := ws.TeamName
	if name == "" {
		name = ws.TeamID
	}
	i.page(w, http.StatusOK, "Installed in "+name, "WaddleBot is installed in "+name+". Invite it to a channel (/invite @WaddleBot) and try /waddlebot help. You can close this tab.")
}

var installPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>WaddleBot — {{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

// page renders a small HTML page; html/template escapes the team name and
// Slack's error text.
func (i *Install) page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := installPage.Execute(w, map[string]string{"Title": title, "Text": text}); err != nil {
		i.log.Warn("slack: unable to render a page", logging.Err(err))
	}
}
