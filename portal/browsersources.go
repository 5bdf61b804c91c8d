package portal

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// OverlayGrace is how long a rotated-out browser-source token keeps
// working: time to paste the new URL into OBS without a blank overlay.
const OverlayGrace = 5 * time.Minute

// overlayBase is where the overlay server (package portal/overlay) serves
// browser sources; kept here to avoid an import cycle of page and server.
const overlayBase = "/overlay"

type browserSourcesData struct {
	Access  access
	Sources []store.OverlaySource
	Themes  []string
	// NewURL is the URL of a source just rotated: shown once, since only
	// the token's hash is kept.
	NewURL, NewSource string
	Grace             time.Duration
	Error             string
	Saved             string
}

func (p *Portal) browserSourcesPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	p.renderBrowserSources(w, r, a, http.StatusOK, browserSourcesData{Saved: r.URL.Query().Get("saved")})
}

func (p *Portal) renderBrowserSources(w http.ResponseWriter, r *http.Request, a access, status int, d browserSourcesData) {
	ps := sessionOf(r.Context())
	srcs, err := p.st.OverlaySources(r.Context(), a.Community.ID)
	if err != nil {
		p.log.Error("portal: unable to list browser sources", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	d.Access, d.Sources, d.Themes, d.Grace = a, srcs, store.OverlayThemes, OverlayGrace
	p.render(w, r, ps, status, "browsersources", "Browser sources of "+a.Community.Name, d)
}

// rotateBrowserSource makes a source's first token or replaces it, and
// shows the new URL once.
func (p *Portal) rotateBrowserSource(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	source := r.PathValue("source")
	if !store.ValidOverlaySource(source) {
		p.renderBrowserSources(w, r, a, http.StatusNotFound, browserSourcesData{Error: "There is no such browser source."})
		return
	}
	token, err := p.st.RotateOverlayToken(r.Context(), actor(ps), a.Community.ID, source, p.cfg.Clock.Now(), OverlayGrace, from(r, ps))
	if err != nil {
		p.log.Error("portal: unable to rotate a browser source", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The URL was not changed. Please try again.")
		return
	}
	// The page shows the secret URL, so it answers the POST itself rather
	// than redirecting to a GET that could not show it again.
	p.renderBrowserSources(w, r, a, http.StatusOK, browserSourcesData{NewSource: source,
		NewURL: p.publicURL + overlayBase + "/" + source + "?t=" + token})
}

// setBrowserSourceLook saves a source's theme, font size and size.
func (p *Portal) setBrowserSourceLook(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	source := r.PathValue("source")
	if !store.ValidOverlaySource(source) {
		p.renderBrowserSources(w, r, a, http.StatusNotFound, browserSourcesData{Error: "There is no such browser source."})
		return
	}
	look, problem := readLook(r)
	if problem == "" {
		if err := look.Check(); err != nil {
			problem = strings.TrimPrefix(err.Error(), store.ErrConflict.Error()+": ")
		}
	}
	if problem != "" {
		p.renderBrowserSources(w, r, a, http.StatusBadRequest, browserSourcesData{Error: source + ": " + problem + "."})
		return
	}
	err := p.st.SetOverlayLook(r.Context(), actor(ps), a.Community.ID, source, look, from(r, ps))
	if errors.Is(err, store.ErrConflict) {
		p.renderBrowserSources(w, r, a, http.StatusBadRequest, browserSourcesData{Error: source + ": the database refused these settings."})
		return
	}
	if err != nil {
		p.log.Error("portal: unable to save a browser source's look", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The settings were not saved. Please try again.")
		return
	}
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/browser-sources?saved="+source, http.StatusSeeOther)
}

func readLook(r *http.Request) (store.OverlayLook, string) {
	l := store.OverlayLook{Theme: r.PostFormValue("theme")}
	for _, f := range []struct {
		name string
		into *int
	}{{"font_size", &l.FontSize}, {"width", &l.Width}, {"height", &l.Height}} {
		n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue(f.name)))
		if err != nil {
			return l, strings.ReplaceAll(f.name, "_", " ") + " must be a whole number"
		}
		*f.into = n
	}
	return l, ""
}
