package twitch

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nicklaw5/helix/v2"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// OAuthConfig configures the connect routes.
type OAuthConfig struct {
	Helix  *Helix
	Store  *Store
	Tokens *TokenSource // optional: re-reads the bot's moderator channels after a connect
	// PublicURL is where browsers reach this service; the callback is
	// PublicURL + "/connect/twitch/callback", which must also be the Helix
	// redirect URI registered with Twitch.
	PublicURL string
	AuthURL   string // Twitch's OAuth base, default DefaultAuthURL
	// Operator tells whether a request may use the operator pages
	// (connecting the bot account, the status list); nil refuses them all.
	// Connecting a channel needs no such check: the grant is the proof.
	Operator func(r *http.Request) bool
	Conn     *natsx.Conn
	Logger   *slog.Logger
}

// OAuth serves the authorization-code flow that connects a broadcaster's
// channel (/connect/twitch) or the bot's account (/connect/twitch/bot).
type OAuth struct {
	helix     *Helix
	store     *Store
	tokens    *TokenSource
	publicURL string
	authURL   string
	operator  func(r *http.Request) bool
	conn      *natsx.Conn
	log       *slog.Logger
	// secure: the public URL is https, so the state cookie is Secure.
	secure bool
}

// stateCookie ties a connect link's state to the browser that opened it.
const stateCookie = "waddlebot_twitch_oauth_state"

// stateLifetime is how long a connect link's state is good for.
const stateLifetime = 10 * time.Minute

// NewOAuth checks the configuration.
func NewOAuth(cfg OAuthConfig) (*OAuth, error) {
	if cfg.Helix == nil || cfg.Store == nil {
		return nil, errors.New("twitch: OAuth needs Helix and Store")
	}
	if _, err := url.Parse(cfg.PublicURL); err != nil || cfg.PublicURL == "" {
		return nil, errors.New("twitch: OAuth needs a PublicURL that is a URL")
	}
	if cfg.AuthURL == "" {
		cfg.AuthURL = DefaultAuthURL
	}
	// Twitch exchanges a code only for the redirect URI it was issued to,
	// and helix sends the one Helix was made with.
	if want := strings.TrimRight(cfg.PublicURL, "/") + "/connect/twitch/callback"; cfg.Helix.redirectURI != want {
		return nil, fmt.Errorf("twitch: the Helix redirect URI is %q, the OAuth callback is %q: they must match", cfg.Helix.redirectURI, want)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &OAuth{helix: cfg.Helix, store: cfg.Store, tokens: cfg.Tokens,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"), authURL: strings.TrimRight(cfg.AuthURL, "/"),
		operator: cfg.Operator, conn: cfg.Conn, log: cfg.Logger.With(logging.KeyPlatform, "twitch"),
		secure: strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://")}, nil
}

// Mount adds the routes. Methods are checked in the handlers, so any mux
// with Handle works.
func (o *OAuth) Mount(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("/connect/twitch", collectors.GetOnly(func(w http.ResponseWriter, r *http.Request) { o.connect(w, r, KindBroadcaster) }))
	mux.Handle("/connect/twitch/bot", collectors.GetOnly(o.operatorOnly(func(w http.ResponseWriter, r *http.Request) { o.connect(w, r, KindBot) })))
	mux.Handle("/connect/twitch/callback", collectors.GetOnly(o.callback))
	mux.Handle("/connect/twitch/status", collectors.GetOnly(o.operatorOnly(o.status)))
}

// operatorOnly refuses a request the Operator check does not pass: anyone
// who could connect the bot account could make the bot speak as theirs.
func (o *OAuth) operatorOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o.operator == nil || !o.operator(r) {
			o.page(w, http.StatusForbidden, "For the operator only",
				"This page is for whoever runs this WaddleBot: open it with ?token=<WADDLEBOT_ADMIN_TOKEN>.")
			return
		}
		h(w, r)
	}
}

// OperatorCheck passes requests that carry token (as ?token= or a bearer
// token) and, when allowLoopback is set (dev), any request from this
// machine. An empty token passes nobody by itself.
func OperatorCheck(token string, allowLoopback bool) func(r *http.Request) bool {
	return func(r *http.Request) bool {
		if token != "" {
			given := r.URL.Query().Get("token")
			if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				given = bearer
			}
			if subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
				return true
			}
		}
		if allowLoopback {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() &&
				r.Header.Get("X-Forwarded-For") == "" && r.Header.Get("Forwarded") == "" {
				return true
			}
		}
		return false
	}
}

// requiredScopes is what a kind of account must grant.
func requiredScopes(kind string) []string {
	if kind == KindBot {
		return eventsub.BotScopes()
	}
	return eventsub.BroadcasterScopes()
}

func (o *OAuth) callbackURL() string { return o.publicURL + "/connect/twitch/callback" }

// connect sends the browser to Twitch's consent page.
func (o *OAuth) connect(w http.ResponseWriter, r *http.Request, kind string) {
	state, err := o.store.st.CreateOAuthState(r.Context(), schemas.PlatformTwitch, kind)
	if err != nil {
		o.log.Error("twitch: unable to start a connect", logging.Err(err))
		o.page(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	// Built with url.Values: helix's GetAuthorizationURL does not escape.
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", o.helix.ClientID())
	q.Set("redirect_uri", o.callbackURL())
	q.Set("scope", strings.Join(requiredScopes(kind), " "))
	q.Set("state", state)
	// Always show the consent page, so a user signed in as the wrong account
	// can switch before granting.
	q.Set("force_verify", "true")
	w.Header().Set("Cache-Control", "no-store")
	collectors.SetStateCookie(w, stateCookie, state, o.secure)
	http.Redirect(w, r, o.authURL+"/authorize?"+q.Encode(), http.StatusFound)
}

// callback finishes the flow: checks the state, exchanges the code, learns
// who granted it and saves the account.
func (o *OAuth) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	if !collectors.CheckStateCookie(r, stateCookie, state) {
		// Not taken: the state may belong to another browser whose connect
		// is still under way.
		o.page(w, http.StatusBadRequest, "Link expired", "This sign-in link was not started in this browser, or it expired or was already used. "+
			"Open the connect link again in this browser.")
		return
	}
	collectors.ClearStateCookie(w, stateCookie, o.secure) // spent either way
	if q.Get("error") != "" {
		// The state is spent either way; its kind does not matter here.
		_, _ = o.store.st.TakeOAuthState(ctx, schemas.PlatformTwitch, state, stateLifetime)
		o.page(w, http.StatusOK, "Not connected", "You declined the request on Twitch, so nothing was connected. "+
			"Open the connect link again if that was a mistake.")
		return
	}
	kind, err := o.store.st.TakeOAuthState(ctx, schemas.PlatformTwitch, state, stateLifetime)
	if errors.Is(err, store.ErrNotFound) {
		o.page(w, http.StatusBadRequest, "Link expired", "This sign-in link is unknown, expired or already used. Open the connect link again.")
		return
	}
	if err != nil {
		o.log.Error("twitch: unable to check OAuth state", logging.Err(err))
		o.page(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	code := q.Get("code")
	if code == "" {
		o.page(w, http.StatusBadRequest, "Not connected", "Twitch sent no authorization code. Open the connect link again.")
		return
	}

	exchanged, err := o.helix.Client(ctx, "").RequestUserAccessToken(code)
	if err != nil || exchanged.StatusCode != http.StatusOK || exchanged.Data.AccessToken == "" {
		if err != nil {
			err = authCallError(err)
		}
		o.log.Warn("twitch: authorization code refused", logging.Err(err), "status", statusOf(exchanged))
		o.page(w, http.StatusBadGateway, "Not connected", "Twitch did not accept the sign-in. Open the connect link again.")
		return
	}
	now := time.Now()
	tok := OAuthToken{Access: exchanged.Data.AccessToken, Refresh: exchanged.Data.RefreshToken,
		Scopes: exchanged.Data.Scopes, ExpiresAt: expiresAt(now, exchanged.Data.ExpiresIn)}

	validated, err := validateToken(ctx, o.helix, tok.Access)
	if err != nil || validated.StatusCode != http.StatusOK || validated.Data.UserID == "" {
		o.log.Warn("twitch: new token did not validate", logging.Err(err), "status", statusOfValidate(validated))
		o.page(w, http.StatusBadGateway, "Not connected", "Twitch did not confirm the new token. Open the connect link again.")
		return
	}
	if len(validated.Data.Scopes) > 0 {
		tok.Scopes = validated.Data.Scopes
	}
	if missing := missingScopes(requiredScopes(kind), tok.Scopes); len(missing) > 0 {
		o.revoke(r, tok.Access)
		o.render(w, http.StatusBadRequest, missingPage, map[string]any{"Missing": missing})
		return
	}

	acc := Account{UserID: validated.Data.UserID, Login: validated.Data.Login, DisplayName: validated.Data.Login,
		Kind: kind, Scopes: tok.Scopes, Status: StatusConnected}
	if users, err := o.helix.Client(ctx, tok.Access).GetUsers(&helix.UsersParams{IDs: []string{acc.UserID}}); err == nil &&
		users.StatusCode == http.StatusOK && len(users.Data.Users) == 1 {
		acc.DisplayName = users.Data.Users[0].DisplayName
	} else {
		o.log.Warn("twitch: unable to read the display name; using the login", logging.KeyID, acc.UserID, logging.Err(err))
	}

	if err := o.store.Save(ctx, acc, tok); err != nil {
		o.log.Error("twitch: unable to save account", logging.KeyID, acc.UserID, logging.Err(err))
		o.page(w, http.StatusServiceUnavailable, "Something went wrong", "The account could not be saved. Please try again in a minute.")
		return
	}
	o.log.Info("twitch: account connected", logging.KeyID, acc.UserID, "login", acc.Login, "kind", kind)
	announce(o.conn, o.log, AccountChange{UserID: acc.UserID, Kind: kind, Status: StatusConnected})
	if o.tokens != nil {
		// Best effort: the hourly validation pass corrects it otherwise.
		if err := o.tokens.refreshModerators(ctx); err != nil {
			o.log.Warn("twitch: unable to re-read the bot's moderator channels", logging.Err(err))
		}
	}
	o.render(w, http.StatusOK, connectedPage, map[string]any{"Name": acc.DisplayName, "Kind": kind})
}

// revoke gives back a token we will not use.
func (o *OAuth) revoke(r *http.Request, access string) {
	if _, err := o.helix.Client(r.Context(), "").RevokeUserAccessToken(access); err != nil {
		o.log.Warn("twitch: unable to revoke an unused token", logging.Err(authCallError(err)))
	}
}

func missingScopes(required, granted []string) []string {
	var missing []string
	for _, s := range required {
		if !slices.Contains(granted, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

func statusOf(r *helix.UserAccessTokenResponse) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

func statusOfValidate(r *helix.ValidateTokenResponse) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// accountStatus is an account as the status route shows it: no tokens.
type accountStatus struct {
	UserID         string    `json:"user_id"`
	Login          string    `json:"login"`
	DisplayName    string    `json:"display_name"`
	Kind           string    `json:"kind"`
	Status         string    `json:"status"`
	Scopes         []string  `json:"scopes"`
	BotIsModerator bool      `json:"bot_is_moderator"`
	ConnectedAt    time.Time `json:"connected_at"`
	Error          string    `json:"error,omitempty"`
}

func (o *OAuth) status(w http.ResponseWriter, r *http.Request) {
	accounts, err := o.store.All(r.Context())
	if err != nil {
		o.log.Error("twitch: unable to list accounts", logging.Err(err))
		http.Error(w, "unable to list accounts", http.StatusServiceUnavailable)
		return
	}
	out := make([]accountStatus, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, accountStatus{UserID: a.UserID, Login: a.Login, DisplayName: a.DisplayName, Kind: a.Kind,
			Status: a.Status, Scopes: a.Scopes, BotIsModerator: a.BotIsModerator, ConnectedAt: a.ConnectedAt, Error: a.Error})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

var (
	basePage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>WaddleBot — {{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))
	connectedPage = template.Must(template.New("connected").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>WaddleBot — connected</title></head>
<body><h1>Connected {{.Name}}</h1><p>Connected {{.Name}} — you can close this tab.</p></body></html>
`))
	missingPage = template.Must(template.New("missing").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>WaddleBot — not connected</title></head>
<body><h1>Not connected</h1><p>WaddleBot needs every permission it asked for. These were not granted:</p>
<ul>{{range .Missing}}<li>{{.}}</li>{{end}}</ul><p>Open the connect link again and accept them all.</p></body></html>
`))
)

func (o *OAuth) page(w http.ResponseWriter, status int, title, text string) {
	o.render(w, status, basePage, map[string]any{"Title": title, "Text": text})
}

func (o *OAuth) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		o.log.Warn("twitch: unable to render page", logging.Err(err))
	}
}
