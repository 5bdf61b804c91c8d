package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// siteAuditPage is how many entries one page of the site audit shows.
const siteAuditPage = 100

// superAdminOnly serves h to super-admins only; anyone else gets 403, audited
// without a community (the request concerns the whole site).
func (p *Portal) superAdminOnly(h http.HandlerFunc) http.HandlerFunc {
	return p.signedIn(func(w http.ResponseWriter, r *http.Request) {
		ps := sessionOf(r.Context())
		if !ps.User.SuperAdmin {
			p.audit(r, ps, "", "permission.denied", r.Method+" "+r.URL.Path, map[string]any{"needed": "super-admin"})
			p.errorPage(w, r, ps, http.StatusForbidden, "Not allowed", "This page is for super-admins.")
			return
		}
		h(w, r)
	})
}

type usersData struct {
	Users []store.PortalUserInfo
	Self  string
	Error string
}

func (p *Portal) usersPage(w http.ResponseWriter, r *http.Request) {
	p.renderUsers(w, r, http.StatusOK, "")
}

func (p *Portal) renderUsers(w http.ResponseWriter, r *http.Request, status int, problem string) {
	ps := sessionOf(r.Context())
	us, err := p.st.PortalUsers(r.Context())
	if err != nil {
		p.log.Error("portal: unable to list users", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.render(w, r, ps, status, "users", "Users", usersData{Users: us, Self: ps.User.ID, Error: problem})
}

// formOnOff reads a form's "on" or "off"; ok false for anything else.
func formOnOff(v string) (on, ok bool) {
	switch v {
	case "on":
		return true, true
	case "off":
		return false, true
	}
	return false, false
}

// changePortalUser applies a super-admin's change to the user of the path.
func (p *Portal) changePortalUser(w http.ResponseWriter, r *http.Request, change func(userID string, on bool) error) {
	ps := sessionOf(r.Context())
	userID := r.PathValue("user")
	on, ok := formOnOff(r.PostFormValue("value"))
	if _, err := uuid.Parse(userID); err != nil || !ok {
		p.renderUsers(w, r, http.StatusBadRequest, "Choose a user and whether to turn the setting on or off.")
		return
	}
	err := change(userID, on)
	switch {
	case errors.Is(err, store.ErrLastSuperAdmin):
		p.renderUsers(w, r, http.StatusConflict, "This is the last enabled super-admin: make someone else super-admin first.")
		return
	case errors.Is(err, store.ErrNotFound):
		p.renderUsers(w, r, http.StatusNotFound, "There is no such user.")
		return
	case err != nil:
		p.log.Error("portal: unable to change user", logging.KeyID, userID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The change was not saved. Please try again.")
		return
	}
	http.Redirect(w, r, Base+"/admin/users", http.StatusSeeOther)
}

func (p *Portal) setSuperAdmin(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	p.changePortalUser(w, r, func(userID string, on bool) error {
		return p.st.SetSuperAdmin(r.Context(), actor(ps), userID, on, from(r, ps))
	})
}

func (p *Portal) setDisabled(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	p.changePortalUser(w, r, func(userID string, on bool) error {
		return p.st.SetUserDisabled(r.Context(), actor(ps), userID, on, from(r, ps))
	})
}

type siteAuditData struct {
	Entries      []store.AuditEntry
	ActionPrefix string
	Actor        string
	Next         string // the next page's URL, "" on the last page
	First        string // the first page's URL when not on it
}

func (p *Portal) siteAuditPage(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	q := r.URL.Query()
	f := store.AuditFilter{ActionPrefix: truncate(strings.TrimSpace(q.Get("action")), 100),
		Actor: truncate(strings.TrimSpace(q.Get("actor")), 200), Limit: siteAuditPage}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			p.errorPage(w, r, ps, http.StatusBadRequest, "Bad page", "The page link is broken; start from the first page.")
			return
		}
		f.Before = n
	}
	es, more, err := p.st.SiteAudit(r.Context(), f)
	if err != nil {
		p.log.Error("portal: unable to read the site audit log", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	d := siteAuditData{Entries: es, ActionPrefix: f.ActionPrefix, Actor: f.Actor}
	page := url.Values{}
	if f.ActionPrefix != "" {
		page.Set("action", f.ActionPrefix)
	}
	if f.Actor != "" {
		page.Set("actor", f.Actor)
	}
	if f.Before != 0 {
		d.First = siteAuditURL(page)
	}
	if more {
		page.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		d.Next = siteAuditURL(page)
	}
	p.render(w, r, ps, http.StatusOK, "siteaudit", "Site audit log", d)
}

func siteAuditURL(q url.Values) string {
	if len(q) == 0 {
		return Base + "/admin/audit"
	}
	return Base + "/admin/audit?" + q.Encode()
}
