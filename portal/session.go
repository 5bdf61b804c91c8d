package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
)

// sessionCookie names the session cookie; over https it takes the
// __Host- prefix, which browsers accept only Secure, host-only and on
// path /, so a sibling subdomain cannot plant or shadow it.
func (p *Portal) sessionCookie() string {
	if p.secure {
		return "__Host-waddlebot_portal"
	}
	return "waddlebot_portal"
}

// preCookie carries the CSRF token of the forms shown before sign-in (the
// dev sign-in button): there is no session to keep it in yet.
func (p *Portal) preCookie() string {
	if p.secure {
		return "__Host-waddlebot_portal_pre"
	}
	return "waddlebot_portal_pre"
}

func (p *Portal) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode})
}

type sessionKey struct{}

func sessionOf(ctx context.Context) *store.PortalSession {
	s, _ := ctx.Value(sessionKey{}).(*store.PortalSession)
	return s
}

// session reads the request's live session, nil when signed out.
func (p *Portal) session(r *http.Request) (*store.PortalSession, error) {
	c, err := r.Cookie(p.sessionCookie())
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ps, err := p.st.TouchPortalSession(r.Context(), c.Value, p.cfg.Clock.Now(), p.cfg.SessionIdle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &ps, nil
}

// signedIn serves h to a signed-in visitor (others go to the sign-in
// page) and refuses a state-changing request that fails the CSRF check.
func (p *Portal) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ps, err := p.session(r)
		if err != nil {
			p.log.Error("portal: unable to load session", logging.Err(err))
			p.errorPage(w, r, nil, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
			return
		}
		if ps == nil {
			if _, err := r.Cookie(p.sessionCookie()); err == nil {
				// A dead session's cookie goes, or every request would
				// look it up (and try to delete it) again.
				p.setCookie(w, p.sessionCookie(), "", -1)
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				p.errorPage(w, r, nil, http.StatusForbidden, "Signed out",
					"Your session ended, so this change was not made. Sign in again and repeat it.")
				return
			}
			http.Redirect(w, r, Base+"/signin", http.StatusSeeOther)
			return
		}
		if !safeMethod(r.Method) && !p.checkCSRF(r, ps.CSRFToken) {
			p.audit(r, ps, "", "csrf.refused", r.URL.Path, nil)
			p.errorPage(w, r, ps, http.StatusForbidden, "Request refused",
				"This form was not sent from a portal page opened in this session (its security token is missing or wrong). "+
					"Go back, reload the page and try again.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, ps)))
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkCSRF passes a form whose csrf field is want and whose Origin, when
// the browser sent one, is ours.
func (p *Portal) checkCSRF(r *http.Request, want string) bool {
	if !p.sameOrigin(r) {
		return false
	}
	got := r.PostFormValue("csrf")
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin accepts a request without Origin (the token decides) or with
// the public URL's origin or the origin of the host it was sent to.
func (p *Portal) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == "null" {
		return false
	}
	if strings.EqualFold(origin, p.origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// startSession signs the browser in as u.
func (p *Portal) startSession(w http.ResponseWriter, r *http.Request, u store.PortalUser) error {
	// A sign-in replaces whatever session this browser had.
	if c, err := r.Cookie(p.sessionCookie()); err == nil && c.Value != "" {
		if err := p.st.DeletePortalSession(r.Context(), c.Value); err != nil {
			p.log.Warn("portal: unable to end the previous session", logging.Err(err))
		}
	}
	now := p.cfg.Clock.Now()
	tok, _, err := p.st.CreatePortalSession(r.Context(), store.NewPortalSession{UserID: u.ID, Now: now,
		ExpiresAt: now.Add(p.cfg.SessionMax), IP: remoteIP(r), UserAgent: truncate(r.UserAgent(), 300)})
	if err != nil {
		return err
	}
	// The cookie outlives no session limit; the server decides the rest.
	p.setCookie(w, p.sessionCookie(), tok, int(p.cfg.SessionMax.Seconds()))
	return nil
}

func (p *Portal) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(p.sessionCookie()); err == nil {
		if err := p.st.DeletePortalSession(r.Context(), c.Value); err != nil {
			p.log.Warn("portal: unable to delete session", logging.Err(err))
		}
	}
	p.audit(r, sessionOf(r.Context()), "", "portal.signout", "", nil)
	p.setCookie(w, p.sessionCookie(), "", -1)
	http.Redirect(w, r, Base+"/signin", http.StatusSeeOther)
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// actor is how the audit log names a signed-in user.
func actor(ps *store.PortalSession) string {
	if ps == nil {
		return "anonymous"
	}
	return "portal:" + ps.User.ID
}

// audit records an event with where it came from. A failure to record is
// logged, not shown: the event itself already happened or was refused.
func (p *Portal) audit(r *http.Request, ps *store.PortalSession, communityID, action, target string, details map[string]any) {
	d := map[string]any{"ip": remoteIP(r)}
	if ps != nil {
		d["name"] = ps.User.DisplayName
	}
	for k, v := range details {
		d[k] = v
	}
	if err := p.st.Audit(r.Context(), nil, store.AuditEntry{CommunityID: communityID, Actor: actor(ps),
		Action: action, Target: target, Details: d}); err != nil {
		p.log.Error("portal: unable to write audit entry", "action", action, logging.Err(err))
	}
}

// from is the audit detail of where a change came from.
func from(r *http.Request, ps *store.PortalSession) map[string]any {
	d := map[string]any{"ip": remoteIP(r)}
	if ps != nil {
		d["name"] = ps.User.DisplayName
	}
	return d
}
