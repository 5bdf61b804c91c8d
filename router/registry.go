package router

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// route is where a command word leads.
type route struct {
	module   *schemas.Manifest
	command  schemas.CommandSpec
	external bool
}

// trigger is a module's wish to see events of one kind.
type trigger struct {
	module *schemas.Manifest
	spec   schemas.TriggerSpec
}

// registry is an immutable snapshot of the catalogue, indexed for the hot
// path: a command word or an event kind is one map lookup.
type registry struct {
	builtin  map[string]route // by name and alias, reached with the community prefix
	external map[string]route // reached with '#'
	triggers map[schemas.Kind][]trigger
	modules  map[string]*schemas.Manifest
}

func buildRegistry(entries []store.CatalogueEntry) *registry {
	r := &registry{builtin: map[string]route{}, external: map[string]route{},
		triggers: map[schemas.Kind][]trigger{}, modules: map[string]*schemas.Manifest{}}
	for i := range entries {
		m := &entries[i].Manifest
		r.modules[m.Name] = m
		table := r.builtin
		if m.External {
			table = r.external
		}
		for _, c := range m.Commands {
			for _, name := range append([]string{c.Name}, c.Aliases...) {
				// First come keeps a name: the catalogue is ordered by module
				// name, so a clash resolves the same way on every replica.
				if _, taken := table[name]; !taken {
					table[name] = route{module: m, command: c, external: m.External}
				}
			}
		}
		for _, t := range m.Triggers {
			r.triggers[t.Kind] = append(r.triggers[t.Kind], trigger{module: m, spec: t})
		}
	}
	return r
}

// lookup finds the route of a parsed command.
func (r *registry) lookup(c Command) (route, bool) {
	if c.Prefix == ExternalPrefix {
		rt, ok := r.external[c.Name]
		return rt, ok
	}
	rt, ok := r.builtin[c.Name]
	return rt, ok
}

// communityView is what the router knows of one community's choices.
type communityView struct {
	community schemas.Community
	choices   map[string]store.ModuleChoice
	overrides map[string]store.CommandOverride
	aliases   map[string]store.Alias

	// labels of users seen in this view's lifetime, by platform and login.
	labelsMu sync.Mutex
	labels   map[string][]string
}

// userLabels returns the labels of the user behind an event, from the
// view's memory or the store: those of every account of the person when the
// user's account is linked to one.
func (v *communityView) userLabels(ctx context.Context, s Store, ev *schemas.Event, person string) ([]string, error) {
	login := ev.User.Login
	if login == "" {
		login = ev.User.ID
	}
	key := ev.Platform + "\x00" + strings.ToLower(login)
	if person != "" {
		key = "person\x00" + person
	}
	v.labelsMu.Lock()
	l, ok := v.labels[key]
	v.labelsMu.Unlock()
	if ok {
		return l, nil
	}
	var err error
	if person != "" {
		l, err = s.PersonLabels(ctx, v.community.ID, person)
	} else {
		l, err = s.UserLabels(ctx, v.community.ID, ev.Platform, login)
	}
	if err != nil {
		return nil, err
	}
	v.labelsMu.Lock()
	if v.labels == nil {
		v.labels = map[string][]string{}
	}
	v.labels[key] = l
	v.labelsMu.Unlock()
	return l, nil
}

// enabled reports whether the community has the module on: its own choice,
// else the manifest's default.
func (v *communityView) enabled(m *schemas.Manifest) bool {
	if c, ok := v.choices[m.Name]; ok {
		return c.Enabled
	}
	return m.DefaultEnabled
}

func (v *communityView) settings(module string) json.RawMessage {
	if c, ok := v.choices[module]; ok && len(c.Settings) > 0 && string(c.Settings) != "{}" {
		return c.Settings
	}
	return nil
}

// effective applies the community's override to a command.
func (v *communityView) effective(c schemas.CommandSpec) (spec schemas.CommandSpec, enabled bool) {
	o, ok := v.overrides[c.Name]
	if !ok {
		return c, true
	}
	if o.Permission != nil {
		c.Permission = *o.Permission
	}
	if o.GlobalCooldownMS != nil {
		c.GlobalCooldownMS = *o.GlobalCooldownMS
	}
	if o.UserCooldownMS != nil {
		c.UserCooldownMS = *o.UserCooldownMS
	}
	return c, o.Enabled == nil || *o.Enabled
}
