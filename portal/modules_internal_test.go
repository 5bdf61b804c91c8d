package portal

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const testSchema = `{"type":"object","properties":{
	"name":{"type":"string","minLength":2},
	"n":{"type":"integer","maximum":3},
	"rate":{"type":"number"},
	"on":{"type":"boolean","default":true},
	"pick":{"enum":[1,"two"]},
	"list":{"type":"array"}},"required":["name"],"additionalProperties":false}`

func post(form url.Values) *http.Request {
	r := httptest.NewRequest("POST", "/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestSettingsFormKinds(t *testing.T) {
	f := newSettingsForm(json.RawMessage(testSchema), json.RawMessage(`{"name":"bo","pick":"two"}`))
	want := map[string]string{"name": kindString, "n": kindInteger, "rate": kindNumber, "on": kindBoolean, "pick": kindEnum, "list": kindJSON}
	if len(f.Fields) != len(want) || f.Whole {
		t.Fatalf("fields %+v", f.Fields)
	}
	for _, fl := range f.Fields {
		if want[fl.Name] != fl.Kind {
			t.Errorf("%s is %s, want %s", fl.Name, fl.Kind, want[fl.Name])
		}
	}
	if fl := f.field("on"); !fl.Checked {
		t.Error("a default of true is not shown checked")
	}
	if fl := f.field("name"); fl.Value != "bo" || !fl.Required {
		t.Errorf("name %+v", fl)
	}
	pick := f.field("pick")
	if len(pick.Options) != 3 || !pick.Options[2].Selected || pick.Options[2].Value != `"two"` {
		t.Errorf("pick %+v", pick.Options)
	}
	for _, s := range []string{`{"type":"string"}`, `not json`, `{"type":"object"}`} {
		if f := newSettingsForm(json.RawMessage(s), nil); !f.Whole {
			t.Errorf("%s: not the JSON textarea", s)
		}
	}
}

func TestSettingsFormReadAndValidate(t *testing.T) {
	for _, c := range []struct {
		name  string
		form  url.Values
		field string // "" for the form's own error
		want  string // "" for valid
		doc   string
	}{
		{"valid", url.Values{"s.name": {"bob"}, "s.n": {"3"}, "s.rate": {"0.5"}, "s.pick": {"1"}, "s.list": {`[1,"x"]`}}, "", "",
			`{"list":[1,"x"],"n":3,"name":"bob","on":false,"pick":1,"rate":0.5}`},
		{"empty fields are left out", url.Values{"s.name": {"bob"}, "s.on": {"true"}, "s.n": {"  "}}, "", "", `{"name":"bob","on":true}`},
		{"integer", url.Values{"s.name": {"bob"}, "s.n": {"x"}}, "n", "Give a whole number.", ""},
		{"number", url.Values{"s.name": {"bob"}, "s.rate": {"1,5"}}, "rate", "Give a number.", ""},
		{"maximum", url.Values{"s.name": {"bob"}, "s.n": {"4"}}, "n", "maximum", ""},
		{"minLength", url.Values{"s.name": {"b"}}, "name", "minLength", ""},
		{"required", url.Values{}, "name", "required", ""},
		{"enum", url.Values{"s.name": {"bob"}, "s.pick": {`3`}}, "pick", "must be one of", ""},
		{"enum not JSON", url.Values{"s.name": {"bob"}, "s.pick": {`{`}}, "pick", "Choose one of", ""},
		{"json", url.Values{"s.name": {"bob"}, "s.list": {`{"a":1}`}}, "list", "want array", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newSettingsForm(json.RawMessage(testSchema), nil)
			r := post(c.form)
			doc := f.read(r)
			if !f.failed() {
				f.validate("test", json.RawMessage(testSchema), doc)
			}
			if c.want == "" {
				if f.failed() {
					t.Fatalf("refused: %+v %q", f.Fields, f.Error)
				}
				if string(doc) != c.doc {
					t.Fatalf("doc %s, want %s", doc, c.doc)
				}
				return
			}
			got := f.Error
			if c.field != "" {
				got = f.field(c.field).Error
			}
			if !strings.Contains(got, c.want) {
				t.Fatalf("error %q, want %q (form %+v, %q)", got, c.want, f.Fields, f.Error)
			}
		})
	}
}

func TestWholeSettingsForm(t *testing.T) {
	schema := json.RawMessage(`{"type":"array","maxItems":1}`)
	for _, c := range []struct{ in, want string }{
		{`[1]`, ""}, {`[1,2]`, "maxItems"}, {`[`, "not valid JSON"},
	} {
		f := newSettingsForm(schema, nil)
		doc := f.read(post(url.Values{"settings_json": {c.in}}))
		if !f.failed() {
			f.validate("test", schema, doc)
		}
		if (c.want == "") != !f.failed() || !strings.Contains(f.Error, c.want) {
			t.Errorf("%s: error %q, want %q", c.in, f.Error, c.want)
		}
	}
	f := newSettingsForm(json.RawMessage(`{"type":"object","properties":{"a":{"$ref":"#/nowhere"}}}`), nil)
	f.validate("broken", json.RawMessage(`{"type":"object","properties":{"a":{"$ref":"#/nowhere"}}}`), json.RawMessage(`{}`))
	if !strings.Contains(f.Error, "schema is broken") {
		t.Errorf("broken schema: %q", f.Error)
	}
}

func TestParseSeconds(t *testing.T) {
	for _, c := range []struct {
		in      string
		ms      int64
		set, ok bool
	}{
		{"", 0, false, true}, {" 30 ", 30000, true, true}, {"1.5", 1500, true, true}, {"0", 0, true, true},
		{"-1", 0, false, false}, {"abc", 0, false, false}, {"NaN", 0, false, false}, {"Inf", 0, false, false},
		{"86400", 86400000, true, true}, {"86401", 0, false, false},
	} {
		ms, set, problem := parseSeconds(c.in)
		if ms != c.ms || set != c.set || (problem == "") != c.ok {
			t.Errorf("%q: %d %v %q", c.in, ms, set, problem)
		}
	}
}

func TestQuoteProblem(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"fine\ttext", ""}, {"a\nb", "control character"}, {"\xff", "UTF-8"}, {strings.Repeat("é", 11), "the most is 10"},
		{strings.Repeat("é", 10), ""}, {"a\u2029b", "line break"},
	} {
		if got := quoteProblem(c.in, "quote", 10); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSettingsForm feeds the form reader and validator what a browser (or
// anyone) may post against what a module may declare: nothing panics, and
// a document that passes is JSON the schema accepts.
func FuzzSettingsForm(f *testing.F) {
	f.Add(testSchema, "name", "bob")
	f.Add(`{"type":"object","properties":{"x":{"type":"integer"}}}`, "x", "1e400")
	f.Add(`{"type":"array"}`, "settings_json", "[")
	f.Fuzz(func(t *testing.T, schema, field, value string) {
		fm := newSettingsForm(json.RawMessage(schema), nil)
		doc := fm.read(post(url.Values{"s." + field: {value}, field: {value}}))
		if fm.failed() {
			return
		}
		if !json.Valid(doc) {
			t.Fatalf("read produced invalid JSON %q", doc)
		}
		fm.validate("fuzz", json.RawMessage(schema), doc)
	})
}
