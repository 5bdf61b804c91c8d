package portal

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// stateLifetime is how long a sign-in link's state is good for.
const stateLifetime = 10 * time.Minute

// stateKind marks the portal's states apart from the connect links'.
const stateKind = "portal"

// pkceCookie keeps the PKCE code verifier between the redirect to the
// provider and the callback; HttpOnly, scoped to the callbacks.
const pkceCookie = "waddlebot_portal_pkce"

// provider is one platform's sign-in.
type provider struct {
	Name, Label string
	cfg         Provider
	scope       string
	pkce        bool
	// who reads the signed-in account with an access token.
	who func(ctx context.Context, p *Portal, pr *provider, token string) (store.Identity, string, error)
}

// Default endpoints of the platforms.
const (
	DefaultTwitchAuthURL      = "https://id.twitch.tv/oauth2"
	DefaultTwitchAPIURL       = "https://api.twitch.tv/helix"
	DefaultDiscordAPIURL      = "https://discord.com/api/v10"
	DefaultSlackAPIURL        = "https://slack.com/api/"
	DefaultSlackOIDCAuthorize = "https://slack.com/openid/connect/authorize"
)

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func buildProviders(c Providers) []*provider {
	var out []*provider
	if c.Twitch.ClientID != "" {
		t := c.Twitch
		t.AuthorizeURL = orDefault(t.AuthorizeURL, DefaultTwitchAuthURL+"/authorize")
		t.TokenURL = orDefault(t.TokenURL, DefaultTwitchAuthURL+"/token")
		t.UserInfoURL = orDefault(t.UserInfoURL, DefaultTwitchAPIURL+"/users")
		out = append(out, &provider{Name: "twitch", Label: "Twitch", cfg: t, who: twitchWho})
	}
	if c.Discord.ClientID != "" {
		d := c.Discord
		d.AuthorizeURL = orDefault(d.AuthorizeURL, "https://discord.com/oauth2/authorize")
		d.TokenURL = orDefault(d.TokenURL, DefaultDiscordAPIURL+"/oauth2/token")
		d.UserInfoURL = orDefault(d.UserInfoURL, DefaultDiscordAPIURL+"/users/@me")
		out = append(out, &provider{Name: "discord", Label: "Discord", cfg: d, scope: "identify", pkce: true, who: discordWho})
	}
	if c.Slack.ClientID != "" {
		s := c.Slack
		s.AuthorizeURL = orDefault(s.AuthorizeURL, DefaultSlackOIDCAuthorize)
		s.TokenURL = orDefault(s.TokenURL, DefaultSlackAPIURL+"openid.connect.token")
		s.UserInfoURL = orDefault(s.UserInfoURL, DefaultSlackAPIURL+"openid.connect.userInfo")
		out = append(out, &provider{Name: "slack", Label: "Slack", cfg: s, scope: "openid profile", who: slackWho})
	}
	return out
}

func (p *Portal) provider(name string) *provider {
	for _, pr := range p.providers {
		if pr.Name == name {
			return pr
		}
	}
	return nil
}

func (p *Portal) callbackURL(pr *provider) string {
	return p.publicURL + callbackBase + "/" + pr.Name + "/callback"
}

func stateCookieName(pr *provider) string { return "waddlebot_portal_" + pr.Name + "_state" }

type signInData struct {
	Providers []*provider
	Dev       bool
	PreCSRF   string
}

func (p *Portal) signInPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if ps, err := p.session(r); err == nil && ps != nil {
		http.Redirect(w, r, Base+"/", http.StatusSeeOther)
		return
	}
	d := signInData{Providers: p.providers, Dev: p.cfg.DevSignIn && loopback(r)}
	if d.Dev {
		d.PreCSRF = randomString()
		p.setCookie(w, p.preCookie(), d.PreCSRF, 3600)
	}
	p.render(w, r, nil, http.StatusOK, "signin", "Sign in", d)
}

// startSignIn sends the browser to the provider's consent page.
func (p *Portal) startSignIn(w http.ResponseWriter, r *http.Request) {
	pr := p.provider(r.PathValue("provider"))
	if pr == nil {
		p.errorPage(w, r, nil, http.StatusNotFound, "Not offered", "Signing in with that platform is not set up here.")
		return
	}
	state, err := p.st.CreateOAuthState(r.Context(), pr.Name, stateKind)
	if err != nil {
		p.log.Error("portal: unable to start a sign-in", logging.KeyPlatform, pr.Name, logging.Err(err))
		p.errorPage(w, r, nil, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	q := url.Values{}
	q.Set("response_type", "code")
	q.Set("client_id", pr.cfg.ClientID)
	q.Set("redirect_uri", p.callbackURL(pr))
	q.Set("scope", pr.scope)
	q.Set("state", state)
	if pr.pkce {
		verifier := randomString()
		sum := sha256.Sum256([]byte(verifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
		http.SetCookie(w, &http.Cookie{Name: pkceCookie, Value: verifier, Path: callbackBase + "/",
			MaxAge: collectors.StateCookieMaxAge, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Cache-Control", "no-store")
	collectors.SetStateCookie(w, stateCookieName(pr), state, p.secure)
	http.Redirect(w, r, pr.cfg.AuthorizeURL+"?"+strings.ReplaceAll(q.Encode(), "+", "%20"), http.StatusFound)
}

// callback finishes a sign-in: checks the state against this browser and
// the store, exchanges the code, learns who signed in, starts a session.
func (p *Portal) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	pr := p.provider(r.PathValue("provider"))
	if pr == nil {
		p.errorPage(w, r, nil, http.StatusNotFound, "Not offered", "Signing in with that platform is not set up here.")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	fail := func(status int, reason, text string, details map[string]any) {
		d := map[string]any{"platform": pr.Name, "reason": reason}
		for k, v := range details {
			d[k] = v
		}
		p.audit(r, nil, "", "portal.signin_failed", pr.Name, d)
		p.errorPage(w, r, nil, status, "Not signed in", text)
	}
	if !collectors.CheckStateCookie(r, stateCookieName(pr), state) {
		// Not taken: the state may belong to another browser whose
		// sign-in is still under way.
		fail(http.StatusBadRequest, "state not from this browser",
			"This sign-in was not started in this browser, or it expired. Start again from the sign-in page.", nil)
		return
	}
	collectors.ClearStateCookie(w, stateCookieName(pr), p.secure)
	verifier := ""
	if c, err := r.Cookie(pkceCookie); err == nil {
		verifier = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: pkceCookie, Path: callbackBase + "/", MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	kind, err := p.st.TakeOAuthState(ctx, pr.Name, state, stateLifetime)
	if errors.Is(err, store.ErrNotFound) || (err == nil && kind != stateKind) {
		fail(http.StatusBadRequest, "state unknown, used or expired",
			"This sign-in link is unknown, expired or already used. Start again from the sign-in page.", nil)
		return
	}
	if err != nil {
		p.log.Error("portal: unable to check OAuth state", logging.KeyPlatform, pr.Name, logging.Err(err))
		p.errorPage(w, r, nil, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusOK, "declined: "+truncate(e, 100), "You declined on "+pr.Label+", so you are not signed in.", nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		fail(http.StatusBadRequest, "no code", pr.Label+" sent no authorization code. Start again from the sign-in page.", nil)
		return
	}
	if pr.pkce && verifier == "" {
		fail(http.StatusBadRequest, "no PKCE verifier", "This sign-in was not started in this browser. Start again from the sign-in page.", nil)
		return
	}
	token, err := p.exchange(ctx, pr, code, verifier)
	if err != nil {
		p.log.Warn("portal: code exchange refused", logging.KeyPlatform, pr.Name, logging.Err(err))
		fail(http.StatusBadGateway, "code exchange refused", pr.Label+" did not accept the sign-in. Start again from the sign-in page.", nil)
		return
	}
	id, name, err := pr.who(ctx, p, pr, token)
	if err != nil {
		p.log.Warn("portal: unable to read the signed-in account", logging.KeyPlatform, pr.Name, logging.Err(err))
		fail(http.StatusBadGateway, "account unreadable", pr.Label+" did not tell who signed in. Start again from the sign-in page.", nil)
		return
	}
	p.finishSignIn(w, r, id, name, p.supers[id.String()])
}

// finishSignIn records the user and starts the session.
func (p *Portal) finishSignIn(w http.ResponseWriter, r *http.Request, id store.Identity, name string, super bool) {
	u, err := p.st.SignInPortalUser(r.Context(), id, name, super)
	if err != nil {
		p.log.Error("portal: unable to record the user", logging.KeyPlatform, id.Platform, logging.Err(err))
		p.errorPage(w, r, nil, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	if u.Disabled {
		p.audit(r, nil, "", "portal.signin_failed", id.String(), map[string]any{"platform": id.Platform, "reason": "user disabled", "user_id": u.ID})
		p.errorPage(w, r, nil, http.StatusForbidden, "Not signed in", "This account is disabled. Ask an administrator.")
		return
	}
	if err := p.startSession(w, r, u); err != nil {
		p.log.Error("portal: unable to start a session", logging.Err(err))
		p.errorPage(w, r, nil, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	ps := &store.PortalSession{User: u}
	p.audit(r, ps, "", "portal.signin", id.String(), map[string]any{"platform": id.Platform, "login": id.Login,
		"super_admin": u.SuperAdmin, "user_agent": truncate(r.UserAgent(), 300)})
	p.log.Info("portal: signed in", logging.KeyPlatform, id.Platform, logging.KeyID, u.ID)
	http.Redirect(w, r, Base+"/", http.StatusSeeOther)
}

// devSignIn signs a loopback visitor in as the local developer (dev only).
func (p *Portal) devSignIn(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.DevSignIn || !loopback(r) {
		p.audit(r, nil, "", "permission.denied", "dev sign-in", nil)
		p.errorPage(w, r, nil, http.StatusForbidden, "Not allowed", "The developer sign-in is for waddlebot dev, from this machine only.")
		return
	}
	c, err := r.Cookie(p.preCookie())
	got := r.PostFormValue("csrf")
	if err != nil || got == "" || !p.sameOrigin(r) || subtle.ConstantTimeCompare([]byte(c.Value), []byte(got)) != 1 {
		p.audit(r, nil, "", "csrf.refused", r.URL.Path, nil)
		p.errorPage(w, r, nil, http.StatusForbidden, "Request refused",
			"This form was not sent from the sign-in page in this browser. Reload the sign-in page and try again.")
		return
	}
	p.setCookie(w, p.preCookie(), "", -1)
	p.finishSignIn(w, r, store.Identity{Platform: "dev", PlatformUserID: "local", Login: "developer"}, "Local developer", true)
}

// exchange trades the code for an access token.
func (p *Portal) exchange(ctx context.Context, pr *provider, code, verifier string) (string, error) {
	form := url.Values{}
	form.Set("grant_type", "authorization_code")
	form.Set("code", code)
	form.Set("redirect_uri", p.callbackURL(pr))
	form.Set("client_id", pr.cfg.ClientID)
	form.Set("client_secret", pr.cfg.ClientSecret)
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pr.cfg.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("portal: unable to build the token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var body struct {
		OK          *bool  `json:"ok"` // Slack's
		Error       string `json:"error"`
		AccessToken string `json:"access_token"`
	}
	if err := p.doJSON(req, &body); err != nil {
		return "", fmt.Errorf("portal: token exchange with %s: %w", pr.Name, err)
	}
	if (body.OK != nil && !*body.OK) || body.AccessToken == "" {
		return "", fmt.Errorf("portal: token exchange with %s refused: %q", pr.Name, body.Error)
	}
	return body.AccessToken, nil
}

func (p *Portal) doJSON(req *http.Request, into any) error {
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("unable to read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, truncate(string(raw), 200))
	}
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("unable to decode the answer: %w", err)
	}
	return nil
}

func (p *Portal) userInfo(ctx context.Context, pr *provider, token string, into any, header ...string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pr.cfg.UserInfoURL, nil)
	if err != nil {
		return fmt.Errorf("portal: unable to build the user request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if err := p.doJSON(req, into); err != nil {
		return fmt.Errorf("portal: user lookup with %s: %w", pr.Name, err)
	}
	return nil
}

func twitchWho(ctx context.Context, p *Portal, pr *provider, token string) (store.Identity, string, error) {
	var body struct {
		Data []struct {
			ID          string `json:"id"`
			Login       string `json:"login"`
			DisplayName string `json:"display_name"`
		} `json:"data"`
	}
	if err := p.userInfo(ctx, pr, token, &body, "Client-Id", pr.cfg.ClientID); err != nil {
		return store.Identity{}, "", err
	}
	if len(body.Data) != 1 || body.Data[0].ID == "" {
		return store.Identity{}, "", fmt.Errorf("portal: Twitch returned %d users for the token", len(body.Data))
	}
	u := body.Data[0]
	return store.Identity{Platform: "twitch", PlatformUserID: u.ID, Login: u.Login}, orDefault(u.DisplayName, u.Login), nil
}

func discordWho(ctx context.Context, p *Portal, pr *provider, token string) (store.Identity, string, error) {
	var body struct {
		ID         string `json:"id"`
		Username   string `json:"username"`
		GlobalName string `json:"global_name"`
	}
	if err := p.userInfo(ctx, pr, token, &body); err != nil {
		return store.Identity{}, "", err
	}
	if body.ID == "" {
		return store.Identity{}, "", errors.New("portal: Discord returned no user id")
	}
	return store.Identity{Platform: "discord", PlatformUserID: body.ID, Login: body.Username}, orDefault(body.GlobalName, body.Username), nil
}

func slackWho(ctx context.Context, p *Portal, pr *provider, token string) (store.Identity, string, error) {
	var body struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Sub    string `json:"sub"`
		UserID string `json:"https://slack.com/user_id"`
		TeamID string `json:"https://slack.com/team_id"`
		Name   string `json:"name"`
	}
	if err := p.userInfo(ctx, pr, token, &body); err != nil {
		return store.Identity{}, "", err
	}
	if !body.OK {
		return store.Identity{}, "", fmt.Errorf("portal: Slack userInfo refused: %q", body.Error)
	}
	id := orDefault(body.UserID, body.Sub)
	if id == "" {
		return store.Identity{}, "", errors.New("portal: Slack returned no user id")
	}
	return store.Identity{Platform: "slack", PlatformUserID: id, Login: body.Name}, body.Name, nil
}
