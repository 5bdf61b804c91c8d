package portal

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/internal/store"
)

// Module secrets: a module's settings name a community secret with a
// property ending in "_secret" (the AI module's api_key_secret and
// bearer_token_secret). The settings keep only the secret's name; the value
// goes to the encrypted secrets table, owned by the community, and is never
// shown again, logged or audited.

// maxSecretBytes bounds a pasted secret (API keys and tokens are far
// shorter).
const maxSecretBytes = 4096

// secretField is one secret a module's settings can name.
type secretField struct {
	Property string // the settings property, e.g. api_key_secret
	Name     string // the community secret it names, e.g. ai.api_key
	Label    string // api key
	Stored   bool
}

// secretName is the community secret a module's property names when set
// from the portal.
func secretName(module, property string) string {
	return module + "." + strings.TrimSuffix(property, "_secret")
}

// secretFields lists the secret properties of a settings schema: string
// properties whose names end in "_secret".
func secretFields(module string, schema json.RawMessage) []secretField {
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return nil
	}
	var out []secretField
	for name, prop := range s.Properties {
		if t, _ := prop.Type.(string); t == "string" && strings.HasSuffix(name, "_secret") {
			out = append(out, secretField{Property: name, Name: secretName(module, name),
				Label: strings.ReplaceAll(strings.TrimSuffix(name, "_secret"), "_", " ")})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Property < out[j].Property })
	return out
}

// withStored marks the secrets the community has.
func (p *Portal) withStored(r *http.Request, communityID string, fields []secretField) ([]secretField, error) {
	for i := range fields {
		_, err := p.st.Secret(r.Context(), communityID, fields[i].Name)
		switch {
		case err == nil:
			fields[i].Stored = true
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	return fields, nil
}

// setModuleSecret stores, replaces or removes one secret of a module's
// settings, and points the settings at it (or away from it).
func (p *Portal) setModuleSecret(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	row, choice, ok := p.findModule(w, r, a)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	var field *secretField
	fields := secretFields(row.Manifest.Name, row.Manifest.Settings)
	for i := range fields {
		if fields[i].Property == r.PathValue("property") {
			field = &fields[i]
		}
	}
	if field == nil {
		p.errorPage(w, r, ps, http.StatusNotFound, "No such secret", "This module's settings name no secret of that kind.")
		return
	}
	settings := map[string]any{}
	if len(choice.Settings) > 0 {
		if err := json.Unmarshal(choice.Settings, &settings); err != nil {
			settings = map[string]any{}
		}
	}
	remove := r.PostFormValue("remove") == "true"
	value := strings.TrimSpace(r.PostFormValue("value"))
	switch {
	case remove:
		if err := p.st.DeleteSecret(r.Context(), a.Community.ID, field.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.unavailable(w, r, a.Community.ID, "remove a module secret", err)
			return
		}
		delete(settings, field.Property)
	case value == "" || len(value) > maxSecretBytes || !utf8.ValidString(value):
		p.errorPage(w, r, ps, http.StatusBadRequest, "Bad secret", "Paste the secret (at most 4096 characters), or remove it.")
		return
	default:
		if err := p.st.PutSecret(r.Context(), nil, a.Community.ID, field.Name, []byte(value)); err != nil {
			p.unavailable(w, r, a.Community.ID, "store a module secret", err)
			return
		}
		settings[field.Property] = field.Name
	}
	doc, err := json.Marshal(settings)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "save module settings", err)
		return
	}
	// The settings change is audited with its before/after (the secret's
	// name only); the secret itself gets an entry that says what happened
	// to it, never its value.
	if err := p.st.ChangeModule(r.Context(), actor(ps), a.Community.ID, row.Manifest.Name, row.Enabled, doc, from(r, ps)); err != nil {
		p.unavailable(w, r, a.Community.ID, "save module settings", err)
		return
	}
	action := "module.secret.set"
	if remove {
		action = "module.secret.remove"
	}
	p.audit(r, ps, a.Community.ID, action, row.Manifest.Name+"/"+field.Property, map[string]any{"secret": field.Name})
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/modules/"+row.Manifest.Name+"?saved=1", http.StatusSeeOther)
}
