package portal

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// permissions a command may need, lowest first.
var permissions = []string{schemas.PermissionEveryone, string(schemas.RoleMember), string(schemas.RoleSubscriber),
	string(schemas.RoleVIP), string(schemas.RoleModerator), string(schemas.RoleBroadcaster)}

// maxCooldownMS keeps a typo (seconds typed as milliseconds, an extra zero)
// from silencing a command for weeks.
const maxCooldownMS = 24 * 60 * 60 * 1000

// commandRow is one command with its module's defaults, the community's
// override and what takes effect.
type commandRow struct {
	Module     string
	External   bool
	Spec       schemas.CommandSpec
	Override   bool // the community has an override
	Enabled    bool
	Permission string
	GlobalS    string // effective cooldowns, in seconds as the form shows them
	UserS      string
	DefGlobalS string
	DefUserS   string
	Error      string
}

type commandsData struct {
	Access      access
	Commands    []commandRow
	Permissions []string
}

func seconds(ms int64) string {
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

// parseSeconds reads a cooldown typed in seconds ("30", "1.5"); empty is
// ok=true with set=false.
func parseSeconds(s string) (ms int64, set bool, problem string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, ""
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false, "A cooldown is a number of seconds, 0 or more."
	}
	ms = int64(math.Round(f * 1000))
	if ms > maxCooldownMS {
		return 0, false, "A cooldown is at most 86400 seconds (a day)."
	}
	return ms, true, ""
}

func effective(spec schemas.CommandSpec, o store.CommandOverride) (enabled bool, perm string, global, user int64) {
	enabled, perm, global, user = true, spec.Permission, spec.GlobalCooldownMS, spec.UserCooldownMS
	if o.Enabled != nil {
		enabled = *o.Enabled
	}
	if o.Permission != nil {
		perm = *o.Permission
	}
	if o.GlobalCooldownMS != nil {
		global = *o.GlobalCooldownMS
	}
	if o.UserCooldownMS != nil {
		user = *o.UserCooldownMS
	}
	return
}

// commandRows lists the commands of the community's enabled modules.
func (p *Portal) commandRows(ctx context.Context, communityID string) ([]commandRow, error) {
	mods, err := p.moduleRows(ctx, communityID)
	if err != nil {
		return nil, err
	}
	overrides, err := p.st.CommandOverrides(ctx, communityID)
	if err != nil {
		return nil, err
	}
	var out []commandRow
	for _, m := range mods {
		if !m.Enabled {
			continue
		}
		for _, spec := range m.Manifest.Commands {
			o, has := overrides[spec.Name]
			row := commandRow{Module: m.Manifest.Name, External: m.Manifest.External, Spec: spec, Override: has,
				DefGlobalS: seconds(spec.GlobalCooldownMS), DefUserS: seconds(spec.UserCooldownMS)}
			var g, u int64
			row.Enabled, row.Permission, g, u = effective(spec, o)
			row.GlobalS, row.UserS = seconds(g), seconds(u)
			out = append(out, row)
		}
	}
	return out, nil
}

func (p *Portal) commandsPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	p.renderCommands(w, r, a, http.StatusOK, "", "")
}

func (p *Portal) renderCommands(w http.ResponseWriter, r *http.Request, a access, status int, command, problem string) {
	rows, err := p.commandRows(r.Context(), a.Community.ID)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "list commands", err)
		return
	}
	for i := range rows {
		if rows[i].Spec.Name == command {
			rows[i].Error = problem
		}
	}
	p.render(w, r, sessionOf(r.Context()), status, "commands", "Commands of "+a.Community.Name,
		commandsData{Access: a, Commands: rows, Permissions: permissions})
}

// findCommand is the catalogue's spec of the path's command: the first
// module by name that has it, as the router's registry picks.
func (p *Portal) findCommand(w http.ResponseWriter, r *http.Request) (schemas.CommandSpec, bool) {
	name := r.PathValue("command")
	entries, err := p.st.Catalogue(r.Context())
	if err != nil {
		p.unavailable(w, r, "", "read the catalogue", err)
		return schemas.CommandSpec{}, false
	}
	for _, e := range entries {
		for _, c := range e.Manifest.Commands {
			if c.Name == name {
				return c, true
			}
		}
	}
	p.errorPage(w, r, sessionOf(r.Context()), http.StatusNotFound, "No such command", "No module in the catalogue has that command.")
	return schemas.CommandSpec{}, false
}

func (p *Portal) setCommand(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	spec, ok := p.findCommand(w, r)
	if !ok {
		return
	}
	// A value equal to the module's default is stored as "no override",
	// so a later manifest version's default still reaches this community.
	var o store.CommandOverride
	if r.PostFormValue("enabled") != "true" {
		off := false
		o.Enabled = &off
	}
	perm := r.PostFormValue("permission")
	if !schemas.ValidPermission(perm) {
		p.renderCommands(w, r, a, http.StatusBadRequest, spec.Name, "Choose a permission from the list.")
		return
	}
	if perm != spec.Permission {
		o.Permission = &perm
	}
	for _, c := range []struct {
		field string
		def   int64
		dst   **int64
	}{{"global_cooldown", spec.GlobalCooldownMS, &o.GlobalCooldownMS}, {"user_cooldown", spec.UserCooldownMS, &o.UserCooldownMS}} {
		ms, set, problem := parseSeconds(r.PostFormValue(c.field))
		if problem != "" {
			p.renderCommands(w, r, a, http.StatusBadRequest, spec.Name, problem)
			return
		}
		if set && ms != c.def {
			*c.dst = &ms
		}
	}
	ps := sessionOf(r.Context())
	var change *store.CommandOverride
	if o != (store.CommandOverride{}) {
		change = &o
	}
	if err := p.st.ChangeCommandOverride(r.Context(), actor(ps), a.Community.ID, spec.Name, change, from(r, ps)); err != nil {
		p.unavailable(w, r, a.Community.ID, "save command override", err)
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/commands#cmd-"+spec.Name, http.StatusSeeOther)
}

func (p *Portal) resetCommand(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	spec, ok := p.findCommand(w, r)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	if err := p.st.ChangeCommandOverride(r.Context(), actor(ps), a.Community.ID, spec.Name, nil, from(r, ps)); err != nil {
		p.unavailable(w, r, a.Community.ID, "reset command override", err)
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/commands#cmd-"+spec.Name, http.StatusSeeOther)
}
