package portal

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal/restapi"
)

// maxKeyDays bounds a key's lifetime: a key nobody remembers should not
// work forever.
const maxKeyDays = 366

// newAPI builds the REST API the portal serves at /api/v1.
func (p *Portal) newAPI() (*restapi.Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return restapi.New(ctx, restapi.Config{Store: p.st, Conn: p.cfg.Conn, RateLimit: p.cfg.APIRateLimit,
		RateWindow: p.cfg.APIRateWindow, Clock: p.cfg.Clock, Logger: p.cfg.Logger,
		PublicURL: p.publicURL, NATSAuthDir: p.cfg.NATSAuthDir, DevWebhooks: p.cfg.DevSignIn})
}

func (p *Portal) mountAPI(srv *ops.Server) {
	srv.Handle(restapi.Base+"/", p.api)
}

// API serves /api/v1 (for tests and servers that mount it themselves).
func (p *Portal) API() http.Handler { return p.api }

type apiKeysData struct {
	Keys        []store.APIKey
	Communities []store.CommunityRole // the ones the user may make keys for
	Scopes      []string
	Super       bool
	Secret      string // the new key's secret, shown this once
	Error       string
	Now         time.Time
}

func (p *Portal) renderAPIKeys(w http.ResponseWriter, r *http.Request, status int, d apiKeysData) {
	ps := sessionOf(r.Context())
	keys, err := p.st.APIKeysOf(r.Context(), ps.User.ID)
	if err != nil {
		p.log.Error("portal: unable to list API keys", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	list, err := p.st.CommunitiesOf(r.Context(), ps.User.ID, ps.User.SuperAdmin)
	if err != nil {
		p.log.Error("portal: unable to list communities", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	for _, cr := range list {
		if ps.User.SuperAdmin || store.RoleRank(cr.Role) >= store.RoleRank(store.RoleAdmin) {
			d.Communities = append(d.Communities, cr)
		}
	}
	d.Keys, d.Scopes, d.Super, d.Now = keys, store.APIScopes, ps.User.SuperAdmin, p.cfg.Clock.Now()
	p.render(w, r, ps, status, "apikeys", "API keys", d)
}

func (p *Portal) apiKeysPage(w http.ResponseWriter, r *http.Request) {
	p.renderAPIKeys(w, r, http.StatusOK, apiKeysData{})
}

// createAPIKey makes a key for a community the user administers, or a
// site-wide one for a super-admin, and shows its secret once.
func (p *Portal) createAPIKey(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	name := strings.TrimSpace(r.PostFormValue("name"))
	community := r.PostFormValue("community")
	scopes := r.PostForm["scope"]
	days, err := strconv.Atoi(r.PostFormValue("days"))
	switch {
	case name == "" || len(name) > 100:
		p.renderAPIKeys(w, r, http.StatusBadRequest, apiKeysData{Error: "Give the key a name of 1 to 100 characters."})
		return
	case len(scopes) == 0:
		p.renderAPIKeys(w, r, http.StatusBadRequest, apiKeysData{Error: "Choose at least one scope."})
		return
	case err != nil || days < 0 || days > maxKeyDays:
		p.renderAPIKeys(w, r, http.StatusBadRequest, apiKeysData{Error: "Expiry is 1 to 366 days, or 0 for a key that does not expire."})
		return
	}
	for _, sc := range scopes {
		if !store.ValidAPIScope(sc) {
			p.renderAPIKeys(w, r, http.StatusBadRequest, apiKeysData{Error: "Unknown scope " + strconv.Quote(sc) + "."})
			return
		}
	}
	if community == "" {
		if !ps.User.SuperAdmin {
			p.audit(r, ps, "", "permission.denied", "site-wide API key", nil)
			p.renderAPIKeys(w, r, http.StatusForbidden, apiKeysData{Error: "Only super-admins make site-wide keys; choose a community."})
			return
		}
	} else {
		r.SetPathValue("id", community)
		if _, ok := p.community(w, r, store.RoleAdmin); !ok {
			return
		}
	}
	var expires *time.Time
	if days > 0 {
		t := p.cfg.Clock.Now().Add(time.Duration(days) * 24 * time.Hour)
		expires = &t
	}
	secret, _, err := p.st.CreateAPIKey(r.Context(), actor(ps), store.NewAPIKey{Name: name, UserID: ps.User.ID,
		CommunityID: community, Scopes: scopes, ExpiresAt: expires}, from(r, ps))
	if errors.Is(err, store.ErrConflict) {
		p.renderAPIKeys(w, r, http.StatusBadRequest, apiKeysData{Error: "The key was refused: " + err.Error()})
		return
	}
	if err != nil {
		p.log.Error("portal: unable to create an API key", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The key was not created. Please try again.")
		return
	}
	// No redirect: the secret exists only in this answer.
	p.renderAPIKeys(w, r, http.StatusOK, apiKeysData{Secret: secret})
}

func (p *Portal) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	err := p.st.RevokeAPIKey(r.Context(), actor(ps), ps.User.ID, r.PathValue("key"), ps.User.SuperAdmin, p.cfg.Clock.Now(), from(r, ps))
	if errors.Is(err, store.ErrNotFound) {
		p.renderAPIKeys(w, r, http.StatusNotFound, apiKeysData{Error: "There is no such live key of yours."})
		return
	}
	if err != nil {
		p.log.Error("portal: unable to revoke an API key", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The key was not revoked. Please try again.")
		return
	}
	http.Redirect(w, r, Base+"/apikeys", http.StatusSeeOther)
}
