package portal

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/actions/music"
	musicsetup "github.com/waddlebot/waddlebot/actions/music/setup"
	"github.com/waddlebot/waddlebot/actions/music/spotify"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// The Spotify connection of a community, for the music module's song
// requests: OAuth authorization code with PKCE, one fixed callback (a
// Spotify app lists its redirect URIs exactly), the community carried in
// the state's kind. Tokens are kept encrypted in the secrets table.
const (
	spotifyPlatform     = "spotify"
	spotifyKindPrefix   = "music:"
	spotifyStateCookie  = "waddlebot_portal_spotify_state"
	spotifyPKCECookie   = "waddlebot_portal_spotify_pkce"
	spotifyCallbackPath = Base + "/spotify/callback"
)

// spotifyClient is the Spotify app from the configuration (read each time:
// a page view is rare and the settings may change with a restart only).
func (p *Portal) spotifyClient() *spotify.Client {
	c := musicsetup.Spotify(musicsetup.EnvConfig(), p.st)
	c.HTTP = p.cfg.HTTPClient
	return c
}

type spotifyData struct {
	Access     access
	Configured bool
	Connected  bool
	Expiry     time.Time
	Callback   string
	Notice     string
	Error      string
}

func (p *Portal) spotifyPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	d := spotifyData{}
	switch r.URL.Query().Get("done") {
	case "connected":
		d.Notice = "Spotify is connected."
	case "disconnected":
		d.Notice = "Spotify is disconnected."
	}
	p.renderSpotify(w, r, a, http.StatusOK, d)
}

func (p *Portal) renderSpotify(w http.ResponseWriter, r *http.Request, a access, status int, d spotifyData) {
	ps := sessionOf(r.Context())
	c := p.spotifyClient()
	d.Access, d.Configured, d.Callback = a, c.Configured(), p.publicURL+spotifyCallbackPath
	t, err := c.Tokens.Load(r.Context(), a.Community.ID)
	switch {
	case err == nil:
		d.Connected, d.Expiry = true, t.Expiry
	case errors.Is(err, music.ErrNotConnected):
	default:
		p.log.Error("portal: unable to read the Spotify connection", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		d.Error = "The Spotify connection could not be read (is WADDLEBOT_SECRET_KEY set?)."
	}
	p.render(w, r, ps, status, "spotify", "Spotify for "+a.Community.Name, d)
}

// connectSpotify sends the admin to Spotify's consent page.
func (p *Portal) connectSpotify(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	c := p.spotifyClient()
	if !c.Configured() {
		p.renderSpotify(w, r, a, http.StatusBadRequest, spotifyData{Error: "This server has no Spotify app: the operator sets WADDLEBOT_SPOTIFY_CLIENT_ID and WADDLEBOT_SPOTIFY_CLIENT_SECRET."})
		return
	}
	state, err := p.st.CreateOAuthState(r.Context(), spotifyPlatform, spotifyKindPrefix+a.Community.ID)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "start a Spotify connection", err)
		return
	}
	verifier, challenge := spotify.NewPKCE()
	for name, value := range map[string]string{spotifyStateCookie: state, spotifyPKCECookie: verifier} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: spotifyCallbackPath, MaxAge: collectors.StateCookieMaxAge,
			HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, c.AuthURL(state, challenge, p.publicURL+spotifyCallbackPath), http.StatusSeeOther)
}

// spotifyCallback checks the state against this browser and the store,
// checks the admin may still manage the community, exchanges the code and
// keeps the token.
func (p *Portal) spotifyCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ps := sessionOf(r.Context())
	q := r.URL.Query()
	state := q.Get("state")
	fail := func(status int, reason, text string) {
		p.audit(r, ps, "", "music.spotify_connect_failed", spotifyPlatform, map[string]any{"reason": reason})
		p.errorPage(w, r, ps, status, "Spotify not connected", text)
	}
	if !collectors.CheckStateCookie(r, spotifyStateCookie, state) {
		fail(http.StatusBadRequest, "state not from this browser", "This connection was not started in this browser, or it expired. Start again from the community's Spotify page.")
		return
	}
	verifier := ""
	if c, err := r.Cookie(spotifyPKCECookie); err == nil {
		verifier = c.Value
	}
	for _, name := range []string{spotifyStateCookie, spotifyPKCECookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Path: spotifyCallbackPath, MaxAge: -1, HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
	}
	kind, err := p.st.TakeOAuthState(r.Context(), spotifyPlatform, state, stateLifetime)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.HasPrefix(kind, spotifyKindPrefix)) {
		fail(http.StatusBadRequest, "state unknown, used or expired", "This connection link is unknown, expired or already used. Start again from the community's Spotify page.")
		return
	}
	if err != nil {
		p.unavailable(w, r, "", "check a Spotify state", err)
		return
	}
	// The admin's role is checked again: it may have changed since the
	// connection started.
	r.SetPathValue("id", strings.TrimPrefix(kind, spotifyKindPrefix))
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	if e := q.Get("error"); e != "" {
		p.renderSpotify(w, r, a, http.StatusOK, spotifyData{Error: "You declined on Spotify, so it is not connected."})
		return
	}
	if q.Get("code") == "" || verifier == "" {
		fail(http.StatusBadRequest, "no code or verifier", "Spotify sent no authorization code. Start again from the community's Spotify page.")
		return
	}
	c := p.spotifyClient()
	t, err := c.Exchange(r.Context(), q.Get("code"), verifier, p.publicURL+spotifyCallbackPath)
	if err != nil {
		p.log.Warn("portal: Spotify refused the code", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.renderSpotify(w, r, a, http.StatusBadGateway, spotifyData{Error: "Spotify did not accept the connection. Please start again."})
		return
	}
	_, before := c.Tokens.Load(r.Context(), a.Community.ID)
	if err := c.Tokens.Save(r.Context(), a.Community.ID, t); err != nil {
		p.unavailable(w, r, a.Community.ID, "keep the Spotify token", err)
		return
	}
	p.audit(r, ps, a.Community.ID, "music.spotify_connected", spotifyPlatform,
		map[string]any{"before": map[string]any{"connected": before == nil}, "after": map[string]any{"connected": true, "scope": t.Scope}})
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/spotify?done=connected", http.StatusSeeOther)
}

func (p *Portal) disconnectSpotify(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	if err := p.st.DeleteSecret(r.Context(), spotify.Owner(a.Community.ID), spotify.SecretName); err != nil {
		p.unavailable(w, r, a.Community.ID, "forget the Spotify token", err)
		return
	}
	p.audit(r, ps, a.Community.ID, "music.spotify_disconnected", spotifyPlatform,
		map[string]any{"before": map[string]any{"connected": true}, "after": map[string]any{"connected": false}})
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/spotify?done=disconnected", http.StatusSeeOther)
}
