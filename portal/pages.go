package portal

import (
	"errors"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// view is what every page template gets.
type view struct {
	Title   string
	Session *store.PortalSession
	CSRF    string
	Data    any
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, ps *store.PortalSession, status int, page, title string, data any) {
	t := p.pages[page]
	if t == nil {
		p.log.Error("portal: no such page template", "page", page)
		http.Error(w, "page missing", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Session: ps, Data: data}
	if ps != nil {
		v.CSRF = ps.CSRFToken
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout.html", v); err != nil {
		p.log.Warn("portal: unable to render page", "page", page, logging.Err(err))
	}
}

type message struct{ Text string }

func (p *Portal) errorPage(w http.ResponseWriter, r *http.Request, ps *store.PortalSession, status int, title, text string) {
	p.render(w, r, ps, status, "error", title, message{Text: text})
}

// announce tells routers and collectors that a community changed.
func (p *Portal) announce(communityID string) {
	if p.cfg.Conn == nil {
		return
	}
	if err := p.cfg.Conn.NC.Publish(schemas.ControlCommunity(communityID), nil); err != nil {
		p.log.Warn("portal: unable to announce a change", logging.KeyCommunity, communityID, logging.Err(err))
		return
	}
	if err := p.cfg.Conn.NC.Flush(); err != nil {
		p.log.Warn("portal: unable to flush a change notice", logging.KeyCommunity, communityID, logging.Err(err))
	}
}

// access is a community with the signed-in user's standing in it.
type access struct {
	Community schemas.Community
	Role      string // "" for a super-admin who is not a member
	Super     bool
}

func (a access) atLeast(role string) bool {
	return a.Super || store.RoleRank(a.Role) >= store.RoleRank(role)
}

// community loads the community of the path and checks the user has at
// least need in it, answering 404 or 403 (audited) itself otherwise.
func (p *Portal) community(w http.ResponseWriter, r *http.Request, need string) (access, bool) {
	ps := sessionOf(r.Context())
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		p.errorPage(w, r, ps, http.StatusNotFound, "No such community", "There is no community with that id.")
		return access{}, false
	}
	c, err := p.st.Community(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		p.errorPage(w, r, ps, http.StatusNotFound, "No such community", "There is no community with that id.")
		return access{}, false
	}
	if err != nil {
		p.log.Error("portal: unable to read community", logging.KeyCommunity, id, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return access{}, false
	}
	role, err := p.st.MemberRole(r.Context(), c.ID, ps.User.ID)
	if err != nil {
		p.log.Error("portal: unable to read membership", logging.KeyCommunity, id, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return access{}, false
	}
	a := access{Community: c, Role: role, Super: ps.User.SuperAdmin}
	if !a.atLeast(need) {
		p.deny(w, r, a, need)
		return access{}, false
	}
	return a, true
}

// deny answers 403 and records the refusal.
func (p *Portal) deny(w http.ResponseWriter, r *http.Request, a access, need string) {
	ps := sessionOf(r.Context())
	p.audit(r, ps, a.Community.ID, "permission.denied", r.Method+" "+r.URL.Path,
		map[string]any{"role": a.Role, "needed": need})
	text := "This needs the " + need + " role in this community."
	if a.Role == "" {
		text = "You are not a member of this community."
	}
	p.errorPage(w, r, ps, http.StatusForbidden, "Not allowed", text)
}

func (p *Portal) communities(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	list, err := p.st.CommunitiesOf(r.Context(), ps.User.ID, ps.User.SuperAdmin)
	if err != nil {
		p.log.Error("portal: unable to list communities", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.render(w, r, ps, http.StatusOK, "communities", "Communities", list)
}

// communityForm is the create and settings form, with what was wrong.
type communityForm struct {
	ID, Name, Prefix, TimeZone, Locale string
	Errors                             map[string]string
}

func readCommunityForm(r *http.Request) communityForm {
	f := communityForm{Name: strings.TrimSpace(r.PostFormValue("name")), Prefix: strings.TrimSpace(r.PostFormValue("prefix")),
		TimeZone: strings.TrimSpace(r.PostFormValue("time_zone")), Locale: strings.TrimSpace(r.PostFormValue("locale")),
		Errors: map[string]string{}}
	if f.Locale == "" {
		f.Locale = "en"
	}
	if f.Name == "" || utf8.RuneCountInString(f.Name) > 100 {
		f.Errors["name"] = "Give a name of 1 to 100 characters."
	}
	if !validPrefix(f.Prefix) {
		f.Errors["prefix"] = "A prefix is 1 to 3 punctuation characters, not #."
	}
	if f.TimeZone == "" {
		f.Errors["time_zone"] = "Give a time zone, like Europe/Paris or UTC."
	} else if _, err := time.LoadLocation(f.TimeZone); err != nil || strings.EqualFold(f.TimeZone, "local") {
		f.Errors["time_zone"] = "Unknown time zone; use a name like Europe/Paris, America/New_York or UTC."
	}
	if len(f.Locale) > 20 {
		f.Errors["locale"] = "A locale is a short code like en or fr."
	}
	return f
}

// validPrefix mirrors the database's check, so the form explains it.
func validPrefix(s string) bool {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > 3 {
		return false
	}
	for _, c := range s {
		if c == '#' || c == ' ' || !strings.ContainsRune("!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c) {
			return false
		}
	}
	return true
}

func (p *Portal) newCommunityPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "community_new", "New community",
		communityForm{Prefix: "!", TimeZone: "UTC", Locale: "en"})
}

func (p *Portal) createCommunity(w http.ResponseWriter, r *http.Request) {
	ps := sessionOf(r.Context())
	f := readCommunityForm(r)
	if len(f.Errors) > 0 {
		p.render(w, r, ps, http.StatusBadRequest, "community_new", "New community", f)
		return
	}
	c, err := p.st.CreateOwnedCommunity(r.Context(), actor(ps), ps.User.ID,
		store.NewCommunity{Name: f.Name, Prefix: f.Prefix, TimeZone: f.TimeZone, Locale: f.Locale}, from(r, ps))
	if errors.Is(err, store.ErrConflict) {
		f.Errors["name"] = "The database refused these settings; check the prefix."
		p.render(w, r, ps, http.StatusBadRequest, "community_new", "New community", f)
		return
	}
	if err != nil {
		p.log.Error("portal: unable to create community", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The community was not created. Please try again.")
		return
	}
	p.announce(c.ID)
	http.Redirect(w, r, Base+"/c/"+c.ID, http.StatusSeeOther)
}

type communityData struct {
	Access   access
	Form     communityForm
	Channels []store.Channel
	Saved    bool
}

func (p *Portal) communityPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	c := a.Community
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "community", c.Name, communityData{Access: a,
		Saved: r.URL.Query().Get("saved") == "1",
		Form:  communityForm{ID: c.ID, Name: c.Name, Prefix: c.Prefix, TimeZone: c.TimeZone, Locale: c.Locale}})
}

func (p *Portal) updateCommunity(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	f := readCommunityForm(r)
	f.ID = a.Community.ID
	if len(f.Errors) > 0 {
		p.render(w, r, ps, http.StatusBadRequest, "community", a.Community.Name, communityData{Access: a, Form: f})
		return
	}
	c := a.Community
	c.Name, c.Prefix, c.TimeZone, c.Locale = f.Name, f.Prefix, f.TimeZone, f.Locale
	if err := p.st.ChangeCommunity(r.Context(), actor(ps), c, from(r, ps)); err != nil {
		p.log.Error("portal: unable to update community", logging.KeyCommunity, c.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The settings were not saved. Please try again.")
		return
	}
	p.announce(c.ID)
	http.Redirect(w, r, Base+"/c/"+c.ID+"?saved=1", http.StatusSeeOther)
}

func (p *Portal) deletePage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleOwner)
	if !ok {
		return
	}
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "delete", "Delete "+a.Community.Name, communityData{Access: a})
}

func (p *Portal) deleteCommunity(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleOwner)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	if strings.TrimSpace(r.PostFormValue("confirm")) != a.Community.Name {
		p.render(w, r, ps, http.StatusBadRequest, "delete", "Delete "+a.Community.Name,
			communityData{Access: a, Form: communityForm{Errors: map[string]string{"confirm": "Type the community's name exactly to confirm."}}})
		return
	}
	if err := p.st.DeleteCommunity(r.Context(), actor(ps), a.Community.ID, from(r, ps)); err != nil {
		p.log.Error("portal: unable to delete community", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The community was not deleted. Please try again.")
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/", http.StatusSeeOther)
}

type membersData struct {
	Access  access
	Members []store.Member
	Error   string
	Roles   []string
}

var roles = []string{store.RoleOwner, store.RoleAdmin, store.RoleModerator}

func (p *Portal) membersPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	p.renderMembers(w, r, a, http.StatusOK, "")
}

func (p *Portal) renderMembers(w http.ResponseWriter, r *http.Request, a access, status int, problem string) {
	ps := sessionOf(r.Context())
	ms, err := p.st.Members(r.Context(), a.Community.ID)
	if err != nil {
		p.log.Error("portal: unable to list members", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.render(w, r, ps, status, "members", "Members of "+a.Community.Name, membersData{Access: a, Members: ms, Error: problem, Roles: roles})
}

// mayManage reports whether a may move a member from role before to role
// after ("" for none): admins manage admins and moderators, only owners
// touch owners.
func mayManage(a access, before, after string) (string, bool) {
	need := store.RoleAdmin
	if before == store.RoleOwner || after == store.RoleOwner {
		need = store.RoleOwner
	}
	return need, a.atLeast(need)
}

func (p *Portal) addMember(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	platform := strings.TrimSpace(r.PostFormValue("platform"))
	userID := strings.TrimSpace(r.PostFormValue("platform_user_id"))
	role := r.PostFormValue("role")
	if platform != "twitch" && platform != "discord" && platform != "slack" {
		p.renderMembers(w, r, a, http.StatusBadRequest, "Choose Twitch, Discord or Slack.")
		return
	}
	if userID == "" || len(userID) > 64 {
		p.renderMembers(w, r, a, http.StatusBadRequest, "Give the account's user id on that platform.")
		return
	}
	if store.RoleRank(role) == 0 {
		p.renderMembers(w, r, a, http.StatusBadRequest, "Choose a role.")
		return
	}
	u, err := p.st.EnsurePortalUser(r.Context(), store.Identity{Platform: platform, PlatformUserID: userID})
	if err != nil {
		p.log.Error("portal: unable to find or add user", logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The member was not added. Please try again.")
		return
	}
	before, err := p.st.MemberRole(r.Context(), a.Community.ID, u.ID)
	if err != nil {
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.setRole(w, r, a, u.ID, before, role, map[string]any{"account": platform + ":" + userID})
}

func (p *Portal) changeRole(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	userID := r.PathValue("user")
	before, err := p.memberRole(r, a.Community.ID, userID)
	if err != nil || before == "" {
		p.renderMembers(w, r, a, http.StatusNotFound, "That user is not a member.")
		return
	}
	role := r.PostFormValue("role")
	if store.RoleRank(role) == 0 {
		p.renderMembers(w, r, a, http.StatusBadRequest, "Choose a role.")
		return
	}
	p.setRole(w, r, a, userID, before, role, nil)
}

func (p *Portal) setRole(w http.ResponseWriter, r *http.Request, a access, userID, before, after string, details map[string]any) {
	ps := sessionOf(r.Context())
	if need, ok := mayManage(a, before, after); !ok {
		p.deny(w, r, a, need)
		return
	}
	if before == store.RoleOwner && after != store.RoleOwner && p.lastOwner(r, a.Community.ID) {
		p.renderMembers(w, r, a, http.StatusConflict, "A community keeps at least one owner: make someone else owner first.")
		return
	}
	d := from(r, ps)
	for k, v := range details {
		d[k] = v
	}
	if err := p.st.SetMember(r.Context(), actor(ps), a.Community.ID, userID, after, d); err != nil {
		p.log.Error("portal: unable to set member", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The change was not saved. Please try again.")
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/members", http.StatusSeeOther)
}

// memberRole is the role of the user id of a path, "" for an id that is
// not even a user id.
func (p *Portal) memberRole(r *http.Request, communityID, userID string) (string, error) {
	if _, err := uuid.Parse(userID); err != nil {
		return "", nil
	}
	return p.st.MemberRole(r.Context(), communityID, userID)
}

func (p *Portal) lastOwner(r *http.Request, communityID string) bool {
	ms, err := p.st.Members(r.Context(), communityID)
	if err != nil {
		return true // refuse when unsure
	}
	owners := 0
	for _, m := range ms {
		if m.Role == store.RoleOwner {
			owners++
		}
	}
	return owners <= 1
}

func (p *Portal) removeMember(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	userID := r.PathValue("user")
	before, err := p.memberRole(r, a.Community.ID, userID)
	if err != nil || before == "" {
		p.renderMembers(w, r, a, http.StatusNotFound, "That user is not a member.")
		return
	}
	if need, ok := mayManage(a, before, ""); !ok {
		p.deny(w, r, a, need)
		return
	}
	if before == store.RoleOwner && p.lastOwner(r, a.Community.ID) {
		p.renderMembers(w, r, a, http.StatusConflict, "A community keeps at least one owner: make someone else owner first.")
		return
	}
	if err := p.st.RemoveMember(r.Context(), actor(ps), a.Community.ID, userID, from(r, ps)); err != nil {
		p.log.Error("portal: unable to remove member", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "The member was not removed. Please try again.")
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/members", http.StatusSeeOther)
}

func (p *Portal) channelsPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	chs, err := p.st.Channels(r.Context(), a.Community.ID)
	if err != nil {
		p.log.Error("portal: unable to list channels", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.render(w, r, ps, http.StatusOK, "channels", "Channels of "+a.Community.Name, communityData{Access: a, Channels: chs})
}

type auditData struct {
	Access  access
	Entries []store.AuditEntry
}

func (p *Portal) auditPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	es, err := p.st.AuditLog(r.Context(), a.Community.ID, 200)
	if err != nil {
		p.log.Error("portal: unable to read audit log", logging.KeyCommunity, a.Community.ID, logging.Err(err))
		p.errorPage(w, r, ps, http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
		return
	}
	p.render(w, r, ps, http.StatusOK, "audit", "Audit log of "+a.Community.Name, auditData{Access: a, Entries: es})
}
