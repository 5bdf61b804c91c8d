package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// InstallConfig configures the install link.
type InstallConfig struct {
	AppID, ClientSecret string
	// PublicURL is where Discord sends the browser back
	// (<PublicURL>/connect/discord/callback, registered as a redirect in
	// the application's OAuth2 settings).
	PublicURL   string
	Endpoints   Endpoints
	Permissions int64
	Store       *store.Store
	HTTPClient  *http.Client
	Logger      *slog.Logger
}

// Install serves the link that adds the bot to a guild (OAuth2 with the
// bot and applications.commands scopes) and records the guild it was added
// to.
type Install struct {
	cfg          InstallConfig
	log          *slog.Logger
	client       *http.Client
	authorizeURL string
	tokenURL     string
	meURL        string
	redirectURL  string
	// secure: the public URL is https, so the state cookie is Secure.
	secure bool
}

// installCookie holds the state of the install started in this browser.
const installCookie = "wb_discord_install"

// installStateTTL is how long an install link's state is good.
const installStateTTL = 10 * time.Minute

// NewInstall checks cfg. Discord's authorize page lives on the site, not
// under the API path: its base is the API URL's scheme and host, so a fake
// serving the API serves it too.
func NewInstall(cfg InstallConfig) (*Install, error) {
	switch {
	case cfg.AppID == "" || cfg.ClientSecret == "":
		return nil, errors.New("discord: the install link needs the application id and client secret")
	case cfg.PublicURL == "":
		return nil, errors.New("discord: the install link needs the public URL (for the OAuth2 redirect)")
	case cfg.Store == nil:
		return nil, errors.New("discord: the install link needs the store")
	}
	api := strings.TrimRight(cfg.Endpoints.API, "/")
	if api == "" {
		api = DefaultAPIURL
	}
	u, err := url.Parse(api)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("discord: the API URL %q is not a URL", cfg.Endpoints.API)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultHTTPTimeout}
	}
	return &Install{
		cfg: cfg, log: cfg.Logger, client: client,
		authorizeURL: u.Scheme + "://" + u.Host + "/oauth2/authorize",
		tokenURL:     api + "/oauth2/token",
		meURL:        api + "/users/@me",
		redirectURL:  strings.TrimRight(cfg.PublicURL, "/") + "/connect/discord/callback",
		secure:       strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://"),
	}, nil
}

// Mount adds GET /connect/discord (the install link) and its callback.
func (i *Install) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("/connect/discord", collectors.GetOnly(i.connect))
	mux.Handle("/connect/discord/callback", collectors.GetOnly(i.callback))
}

// connect sends the browser to Discord's authorize page with a state that
// is good once.
func (i *Install) connect(w http.ResponseWriter, r *http.Request) {
	state, err := i.cfg.Store.CreateOAuthState(r.Context(), schemas.PlatformDiscord, "")
	if err != nil {
		i.fail(w, http.StatusInternalServerError, "could not start the install", fmt.Errorf("discord: unable to keep the install state: %w", err))
		return
	}
	// The state is tied to this browser too: a callback carrying a state
	// handed to someone else's browser is refused.
	collectors.SetStateCookie(w, installCookie, state, i.secure)
	q := url.Values{}
	q.Set("client_id", i.cfg.AppID)
	// identify: who installed the bot, so the portal can let that person
	// attach the server to a community of theirs.
	q.Set("scope", "bot applications.commands identify")
	q.Set("permissions", strconv.FormatInt(i.cfg.Permissions, 10))
	q.Set("response_type", "code")
	q.Set("redirect_uri", i.redirectURL)
	q.Set("state", state)
	// url.Values encodes spaces as '+'; Discord's documented links use %20.
	http.Redirect(w, r, i.authorizeURL+"?"+strings.ReplaceAll(q.Encode(), "+", "%20"), http.StatusFound)
}

// callback checks the state, confirms the grant by exchanging the code and
// records the guild with a provisional community.
func (i *Install) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx := r.Context()
	state := q.Get("state")
	if state == "" {
		i.fail(w, http.StatusBadRequest, "this install link has no state; start again from /connect/discord", nil)
		return
	}
	if !collectors.CheckStateCookie(r, installCookie, state) {
		i.fail(w, http.StatusBadRequest, "this install link was started in another browser; start again from /connect/discord", nil)
		return
	}
	collectors.ClearStateCookie(w, installCookie, i.secure)
	_, err := i.cfg.Store.TakeOAuthState(ctx, schemas.PlatformDiscord, state, installStateTTL)
	if errors.Is(err, store.ErrNotFound) {
		i.fail(w, http.StatusBadRequest, "this install link was already used or is too old; start again from /connect/discord", nil)
		return
	}
	if err != nil {
		i.fail(w, http.StatusInternalServerError, "could not check the install link", fmt.Errorf("discord: unable to check the install state: %w", err))
		return
	}
	if e := q.Get("error"); e != "" {
		i.fail(w, http.StatusBadRequest, "Discord did not add the bot: "+e, nil)
		return
	}
	code, guildID := q.Get("code"), q.Get("guild_id")
	if code == "" || guildID == "" {
		i.fail(w, http.StatusBadRequest, "Discord sent no code or server: choose a server on Discord's page", nil)
		return
	}
	grant, err := i.exchange(ctx, code)
	if err != nil {
		i.fail(w, http.StatusBadGateway, "Discord did not confirm the install", err)
		return
	}
	// The bot is in the guild only when the grant says so: the bot scope
	// granted and the guild named in the token answer itself (the query's
	// guild_id is the browser's word).
	if !slices.Contains(strings.Fields(grant.Scope), "bot") {
		i.fail(w, http.StatusBadRequest, "Discord did not grant the bot scope, so the bot was not added: start again from /connect/discord and keep \"Add a bot\" checked", nil)
		return
	}
	if grant.Guild == nil || grant.Guild.ID == "" {
		i.fail(w, http.StatusBadGateway, "Discord did not confirm which server the bot was added to; start again from /connect/discord", nil)
		return
	}
	if grant.Guild.ID != guildID {
		i.fail(w, http.StatusBadRequest, "Discord confirmed another server than the one named", nil)
		return
	}
	name := guildID
	if grant.Guild.Name != "" {
		name = grant.Guild.Name
	}
	perms, _ := strconv.ParseInt(q.Get("permissions"), 10, 64)
	installer := ""
	if slices.Contains(strings.Fields(grant.Scope), "identify") {
		// Not knowing who installed it costs the portal's attach offer,
		// not the install.
		if installer, err = i.installer(ctx, grant.AccessToken); err != nil {
			i.log.Warn("discord: unable to tell who installed the bot", "guild_id", guildID, logging.Err(err))
		}
	}
	community, err := i.recordGuild(ctx, guildID, name, perms, installer)
	if err != nil {
		i.fail(w, http.StatusInternalServerError, "could not record the server", err)
		return
	}
	i.log.Info("discord: installed in a guild", "guild_id", guildID, "community_id", community.ID)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = installedPage.Execute(w, map[string]string{"Guild": name})
}

var installedPage = template.Must(template.New("installed").Parse(
	`<!doctype html><title>WaddleBot</title><p>WaddleBot was added to <b>{{.Guild}}</b>. Try <code>/waddlebot help</code> there.</p>`))

type tokenGrant struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	Guild       *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"guild"`
}

// exchange trades the code for a token (client credentials in basic auth),
// which is what proves Discord granted the install. The user token itself
// is not kept: the bot acts with its own token.
func (i *Install) exchange(ctx context.Context, code string) (tokenGrant, error) {
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", i.redirectURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return tokenGrant{}, fmt.Errorf("discord: unable to make the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(i.cfg.AppID, i.cfg.ClientSecret)
	resp, err := i.client.Do(req)
	if err != nil {
		return tokenGrant{}, fmt.Errorf("discord: unable to exchange the install code: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return tokenGrant{}, fmt.Errorf("discord: the install code was refused (%d): %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var g tokenGrant
	if err := json.Unmarshal(body, &g); err != nil || g.AccessToken == "" {
		return tokenGrant{}, fmt.Errorf("discord: unreadable token answer: %v", err)
	}
	return g, nil
}

// installer reads who granted the install, with the user token of the
// grant (the token is used for this one request and not kept).
func (i *Install) installer(ctx context.Context, userToken string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.meURL, nil)
	if err != nil {
		return "", fmt.Errorf("discord: unable to make the user request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+userToken)
	resp, err := i.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discord: unable to read the installing user: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discord: the installing user's token was refused (%d): %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &u); err != nil || u.ID == "" {
		return "", fmt.Errorf("discord: unreadable user answer: %v", err)
	}
	return u.ID, nil
}

// recordGuild gives the guild a provisional community and remembers it.
// The community belongs to a channel record whose id is the guild's (the
// channel of guild-level events: joins, bans, timeouts), so a reinstall
// finds the same one.
func (i *Install) recordGuild(ctx context.Context, guildID, name string, perms int64, installer string) (schemas.Community, error) {
	c, err := i.cfg.Store.ResolveChannel(ctx, store.Channel{
		Platform: schemas.PlatformDiscord, ChannelID: guildID, ServerID: guildID, Name: name})
	if err != nil {
		return schemas.Community{}, fmt.Errorf("discord: unable to give guild %s a community: %w", guildID, err)
	}
	_, err = i.cfg.Store.Pool().Exec(ctx, `
		INSERT INTO discord_guilds (guild_id, name, community_id, permissions, installed_by) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (guild_id) DO UPDATE SET name = EXCLUDED.name, community_id = EXCLUDED.community_id,
			permissions = EXCLUDED.permissions, updated_at = now(),
			installed_by = CASE WHEN EXCLUDED.installed_by = '' THEN discord_guilds.installed_by ELSE EXCLUDED.installed_by END`,
		guildID, name, c.ID, perms, installer)
	if err != nil {
		return schemas.Community{}, fmt.Errorf("discord: unable to record guild %s: %w", guildID, err)
	}
	return c, nil
}

// fail answers the browser with a short message and logs the cause.
func (i *Install) fail(w http.ResponseWriter, status int, message string, err error) {
	if err != nil {
		i.log.Warn("discord: install failed", "status", status, logging.Err(err))
	}
	http.Error(w, message, status)
}
