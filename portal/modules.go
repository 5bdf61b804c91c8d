package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// moduleRow is one catalogue module as a community has it.
type moduleRow struct {
	Manifest schemas.Manifest
	Builtin  bool
	Enabled  bool
	Chosen   bool   // the community chose; otherwise the manifest's default
	Alive    string // "alive (n replicas)", "not running" or "unknown"
}

type modulesData struct {
	Access  access
	Modules []moduleRow
	Manage  bool
}

type moduleData struct {
	Access   access
	Module   moduleRow
	Manage   bool
	Settings *settingsForm
	Secrets  []secretField
	Saved    bool
}

// liveness counts each module's running replicas from the heartbeat
// bucket; ok is false when the portal has no NATS or cannot read it, so
// the page says "unknown" rather than "not running".
func (p *Portal) liveness(ctx context.Context) (map[string]int, bool) {
	if p.cfg.Conn == nil || p.cfg.Conn.JS == nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	kv, err := p.cfg.Conn.JS.KeyValue(ctx, streams.BucketHeartbeats)
	if err != nil {
		p.log.Warn("portal: unable to open the heartbeat bucket", logging.Err(err))
		return nil, false
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		p.log.Warn("portal: unable to list heartbeats", logging.Err(err))
		return nil, false
	}
	defer func() { _ = lister.Stop() }()
	out := map[string]int{}
	for k := range lister.Keys() {
		module, _, _ := strings.Cut(k, ".")
		out[module]++
	}
	if ctx.Err() != nil {
		return nil, false
	}
	return out, true
}

func aliveText(counts map[string]int, known bool, module string) string {
	if !known {
		return "unknown"
	}
	switch n := counts[module]; n {
	case 0:
		return "not running"
	case 1:
		return "alive (1 replica)"
	default:
		return fmt.Sprintf("alive (%d replicas)", n)
	}
}

// moduleRows is the catalogue with the community's choices.
func (p *Portal) moduleRows(ctx context.Context, communityID string) ([]moduleRow, error) {
	entries, err := p.st.Catalogue(ctx)
	if err != nil {
		return nil, err
	}
	choices, err := p.st.CommunityModules(ctx, communityID)
	if err != nil {
		return nil, err
	}
	counts, known := p.liveness(ctx)
	out := make([]moduleRow, 0, len(entries))
	for _, e := range entries {
		row := moduleRow{Manifest: e.Manifest, Builtin: e.Builtin, Enabled: e.Manifest.DefaultEnabled,
			Alive: aliveText(counts, known, e.Manifest.Name)}
		if c, ok := choices[e.Manifest.Name]; ok {
			row.Enabled, row.Chosen = c.Enabled, true
		}
		out = append(out, row)
	}
	return out, nil
}

func (p *Portal) unavailable(w http.ResponseWriter, r *http.Request, communityID, what string, err error) {
	p.log.Error("portal: unable to "+what, logging.KeyCommunity, communityID, logging.Err(err))
	p.errorPage(w, r, sessionOf(r.Context()), http.StatusServiceUnavailable, "Something went wrong", "Please try again in a minute.")
}

func (p *Portal) modulesPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	rows, err := p.moduleRows(r.Context(), a.Community.ID)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "list modules", err)
		return
	}
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "modules", "Modules of "+a.Community.Name,
		modulesData{Access: a, Modules: rows, Manage: a.atLeast(store.RoleAdmin)})
}

// findModule loads the module of the path with the community's choice,
// answering 404 itself.
func (p *Portal) findModule(w http.ResponseWriter, r *http.Request, a access) (moduleRow, store.ModuleChoice, bool) {
	name := r.PathValue("module")
	rows, err := p.moduleRows(r.Context(), a.Community.ID)
	if err != nil {
		p.unavailable(w, r, a.Community.ID, "list modules", err)
		return moduleRow{}, store.ModuleChoice{}, false
	}
	for _, row := range rows {
		if row.Manifest.Name == name {
			choices, err := p.st.CommunityModules(r.Context(), a.Community.ID)
			if err != nil {
				p.unavailable(w, r, a.Community.ID, "read module choices", err)
				return moduleRow{}, store.ModuleChoice{}, false
			}
			return row, choices[name], true
		}
	}
	p.errorPage(w, r, sessionOf(r.Context()), http.StatusNotFound, "No such module", "There is no module of that name in the catalogue.")
	return moduleRow{}, store.ModuleChoice{}, false
}

func (p *Portal) modulePage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleModerator)
	if !ok {
		return
	}
	row, choice, ok := p.findModule(w, r, a)
	if !ok {
		return
	}
	d := moduleData{Access: a, Module: row, Manage: a.atLeast(store.RoleAdmin), Saved: r.URL.Query().Get("saved") == "1"}
	// Only admins see the settings, not just the form: settings may hold
	// things (webhook names, channel ids) moderators have no need for.
	if d.Manage && len(row.Manifest.Settings) > 0 {
		f := newSettingsForm(row.Manifest.Settings, choice.Settings)
		d.Settings = &f
		secrets, err := p.withStored(r, a.Community.ID, secretFields(row.Manifest.Name, row.Manifest.Settings))
		if err != nil {
			p.unavailable(w, r, a.Community.ID, "read module secrets", err)
			return
		}
		d.Secrets = secrets
	}
	p.render(w, r, sessionOf(r.Context()), http.StatusOK, "module", row.Manifest.Name, d)
}

func (p *Portal) setModuleEnabled(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	row, _, ok := p.findModule(w, r, a)
	if !ok {
		return
	}
	var enabled bool
	switch r.PostFormValue("enabled") {
	case "true":
		enabled = true
	case "false":
	default:
		p.errorPage(w, r, sessionOf(r.Context()), http.StatusBadRequest, "Bad request", "Choose to enable or disable the module.")
		return
	}
	ps := sessionOf(r.Context())
	if err := p.st.ChangeModule(r.Context(), actor(ps), a.Community.ID, row.Manifest.Name, enabled, nil, from(r, ps)); err != nil {
		p.unavailable(w, r, a.Community.ID, "switch module", err)
		return
	}
	p.announce(a.Community.ID)
	back := Base + "/c/" + a.Community.ID + "/modules"
	if r.PostFormValue("back") == "module" {
		back += "/" + row.Manifest.Name
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (p *Portal) saveModuleSettings(w http.ResponseWriter, r *http.Request) {
	a, ok := p.community(w, r, store.RoleAdmin)
	if !ok {
		return
	}
	row, choice, ok := p.findModule(w, r, a)
	if !ok {
		return
	}
	ps := sessionOf(r.Context())
	if len(row.Manifest.Settings) == 0 {
		p.errorPage(w, r, ps, http.StatusBadRequest, "No settings", "This module has no settings.")
		return
	}
	f := newSettingsForm(row.Manifest.Settings, choice.Settings)
	doc := f.read(r)
	if !f.failed() {
		f.validate(row.Manifest.Name, row.Manifest.Settings, doc)
	}
	if f.failed() {
		p.render(w, r, ps, http.StatusBadRequest, "module", row.Manifest.Name,
			moduleData{Access: a, Module: row, Manage: true, Settings: &f})
		return
	}
	if err := p.st.ChangeModule(r.Context(), actor(ps), a.Community.ID, row.Manifest.Name, row.Enabled, doc, from(r, ps)); err != nil {
		p.unavailable(w, r, a.Community.ID, "save module settings", err)
		return
	}
	p.announce(a.Community.ID)
	http.Redirect(w, r, Base+"/c/"+a.Community.ID+"/modules/"+row.Manifest.Name+"?saved=1", http.StatusSeeOther)
}

// Setting field kinds the form renders as inputs; anything else is a JSON
// textarea.
const (
	kindString  = "string"
	kindNumber  = "number"
	kindInteger = "integer"
	kindBoolean = "boolean"
	kindEnum    = "enum"
	kindJSON    = "json"
)

type option struct {
	Value    string // the JSON of the enum value
	Label    string
	Selected bool
}

// settingField is one top-level property of a settings schema.
type settingField struct {
	Name     string
	Kind     string
	Help     string
	Value    string
	Checked  bool
	Options  []option
	Required bool
	Error    string
}

// settingsForm renders a module's JSON Schema settings. Whole is set when
// the schema is not an object of properties: the form is then one JSON
// textarea.
type settingsForm struct {
	Fields []settingField
	Whole  bool
	JSON   string
	Error  string
}

func (f *settingsForm) failed() bool {
	if f.Error != "" {
		return true
	}
	for _, fl := range f.Fields {
		if fl.Error != "" {
			return true
		}
	}
	return false
}

func (f *settingsForm) field(name string) *settingField {
	for i := range f.Fields {
		if f.Fields[i].Name == name {
			return &f.Fields[i]
		}
	}
	return nil
}

// newSettingsForm builds the form of schema filled with current (the
// community's settings; properties it lacks show the schema's default).
func newSettingsForm(schema, current json.RawMessage) settingsForm {
	var s struct {
		Type       any                        `json:"type"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	var values map[string]any
	if len(current) > 0 {
		_ = json.Unmarshal(current, &values)
	}
	if json.Unmarshal(schema, &s) != nil || s.Type != "object" || len(s.Properties) == 0 {
		f := settingsForm{Whole: true, JSON: "{}"}
		if len(current) > 0 {
			f.JSON = indentJSON(current)
		}
		return f
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	slices.Sort(names)
	var f settingsForm
	for _, n := range names {
		var prop struct {
			Type        any    `json:"type"`
			Enum        []any  `json:"enum"`
			Description string `json:"description"`
			Default     any    `json:"default"`
		}
		_ = json.Unmarshal(s.Properties[n], &prop)
		fl := settingField{Name: n, Help: prop.Description, Required: slices.Contains(s.Required, n)}
		v, has := values[n]
		if !has {
			v, has = prop.Default, prop.Default != nil
		}
		typ, _ := prop.Type.(string)
		switch {
		case len(prop.Enum) > 0:
			fl.Kind = kindEnum
			cur, _ := json.Marshal(v)
			if !fl.Required {
				fl.Options = append(fl.Options, option{Value: "", Label: "(not set)", Selected: !has})
			}
			for _, e := range prop.Enum {
				b, _ := json.Marshal(e)
				fl.Options = append(fl.Options, option{Value: string(b), Label: fmt.Sprint(e), Selected: has && bytes.Equal(b, cur)})
			}
		case typ == kindString || typ == kindNumber || typ == kindInteger:
			fl.Kind = typ
			if has {
				fl.Value = fmt.Sprint(v)
				if typ != kindString {
					b, _ := json.Marshal(v)
					fl.Value = string(b)
				}
			}
		case typ == kindBoolean:
			fl.Kind = kindBoolean
			fl.Checked, _ = v.(bool)
		default:
			fl.Kind = kindJSON
			if has {
				b, _ := json.MarshalIndent(v, "", "  ")
				fl.Value = string(b)
			}
		}
		f.Fields = append(f.Fields, fl)
	}
	return f
}

func indentJSON(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

// read takes the submitted values into the form (so a refused form shows
// what was typed) and returns the settings document, nil when a field
// could not be read.
func (f *settingsForm) read(r *http.Request) json.RawMessage {
	if f.Whole {
		f.JSON = r.PostFormValue("settings_json")
		var v any
		if err := json.Unmarshal([]byte(f.JSON), &v); err != nil {
			f.Error = "The settings are not valid JSON: " + err.Error()
			return nil
		}
		return json.RawMessage(f.JSON)
	}
	doc := map[string]any{}
	for i := range f.Fields {
		fl := &f.Fields[i]
		raw := r.PostFormValue("s." + fl.Name)
		switch fl.Kind {
		case kindBoolean:
			fl.Checked = raw == "true"
			doc[fl.Name] = fl.Checked
			continue
		case kindEnum:
			for j := range fl.Options {
				fl.Options[j].Selected = fl.Options[j].Value == raw
			}
			if raw == "" {
				continue
			}
			var v any
			if json.Unmarshal([]byte(raw), &v) != nil {
				fl.Error = "Choose one of the listed values."
				continue
			}
			doc[fl.Name] = v
			continue
		}
		fl.Value = raw
		trimmed := strings.TrimSpace(raw)
		if trimmed == "" {
			// Left empty: the module's default applies (or "required" says why not).
			continue
		}
		switch fl.Kind {
		case kindString:
			doc[fl.Name] = raw
		case kindInteger:
			n, err := strconv.ParseInt(trimmed, 10, 64)
			if err != nil {
				fl.Error = "Give a whole number."
				continue
			}
			doc[fl.Name] = n
		case kindNumber:
			n, err := strconv.ParseFloat(trimmed, 64)
			if err != nil {
				fl.Error = "Give a number."
				continue
			}
			doc[fl.Name] = n
		default:
			var v any
			if err := json.Unmarshal([]byte(trimmed), &v); err != nil {
				fl.Error = "This is not valid JSON: " + err.Error()
				continue
			}
			doc[fl.Name] = v
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		f.Error = "The settings could not be encoded."
		return nil
	}
	return b
}

// validate checks doc against the module's schema and puts each problem
// next to the field it is about (problems with the whole go on top).
func (f *settingsForm) validate(module string, schema, doc json.RawMessage) {
	sch, err := compileSettings(module, schema)
	if err != nil {
		f.Error = "This module's settings schema is broken, so no settings can be saved: " + err.Error()
		return
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		f.Error = "The settings are not valid JSON."
		return
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil {
		return
	}
	if !errors.As(err, &ve) {
		f.Error = err.Error()
		return
	}
	for _, p := range settingsProblems(ve) {
		if fl := f.field(p.field); fl != nil && !f.Whole {
			if fl.Error == "" {
				fl.Error = p.text
			}
			continue
		}
		if f.Error != "" {
			f.Error += "; "
		}
		f.Error += p.text
	}
}

// compileSettings compiles a module's settings schema under a URL of its
// own, so a $ref inside resolves against the module's document only.
func compileSettings(module string, schema json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("portal: settings schema of %s is not JSON: %w", module, err)
	}
	url := "https://waddlebot.invalid/modules/" + module + "/settings.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("portal: unable to add settings schema of %s: %w", module, err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("portal: unable to compile settings schema of %s: %w", module, err)
	}
	return s, nil
}

type settingsProblem struct{ field, text string }

// settingsProblems flattens a validation error to its leaves, each with
// the top-level property it is about ("" for the document as a whole).
func settingsProblems(ve *jsonschema.ValidationError) []settingsProblem {
	var out []settingsProblem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			if len(e.InstanceLocation) == 0 {
				for _, m := range k.Missing {
					out = append(out, settingsProblem{field: m, text: "This setting is required."})
				}
				return
			}
		case *kind.AdditionalProperties:
			if len(e.InstanceLocation) == 0 {
				out = append(out, settingsProblem{text: "Unknown settings: " + strings.Join(k.Properties, ", ")})
				return
			}
		}
		field := ""
		if len(e.InstanceLocation) > 0 {
			field = e.InstanceLocation[0]
		}
		text := leafText(e)
		if len(e.InstanceLocation) > 1 {
			text = "at /" + strings.Join(e.InstanceLocation[1:], "/") + ": " + text
		}
		out = append(out, settingsProblem{field: field, text: text})
	}
	walk(ve)
	return out
}

// leafText is the library's own wording of one leaf error.
func leafText(e *jsonschema.ValidationError) string {
	out := e.BasicOutput()
	if out.Error != nil {
		return out.Error.String()
	}
	for _, u := range out.Errors {
		if u.Error != nil {
			return u.Error.String()
		}
	}
	return "invalid value"
}
