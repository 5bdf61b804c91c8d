package external

import (
	"strings"
	"testing"
)

// builtin stands for the built-in modules' names.
var builtin = []string{"alias", "core"}

func TestCheckWebhookURL(t *testing.T) {
	cases := []struct {
		url  string
		dev  bool
		want string // "" accepted, else part of the error
	}{
		{"https://hooks.example.com/wb", false, ""},
		{"https://127.0.0.1:8443/wb", false, ""},
		{"http://example.com/wb", false, "must use https"},
		{"http://127.0.0.1/wb", false, "must use https"},
		{"http://127.0.0.1:9/wb", true, ""},
		{"http://[::1]:9/wb", true, ""},
		{"http://localhost/wb", true, ""},
		{"http://localhost.example.com/wb", true, "must use https"},
		{"http://10.0.0.1/wb", true, "must use https"},
		{"ftp://example.com/wb", false, "must use https"},
		{"https:///wb", false, "absolute"},
		{"/wb", false, "absolute"},
		{"https://user:pw@example.com/wb", false, "without credentials"},
		{"https://example.com/wb#x", false, "fragment"},
		{"", false, "absolute"},
	}
	for _, c := range cases {
		err := CheckWebhookURL(c.url, c.dev)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%q dev=%v: %v, want %q", c.url, c.dev, err, c.want)
		}
	}
}

func TestParseManifest(t *testing.T) {
	cases := []struct {
		doc, want string
	}{
		{`{"name":"bridge","version":"1.0.0","commands":[{"name":"go","permission":"everyone"}]}`, ""},
		{`  `, "give the module"},
		{`null`, "give the module"},
		{`[]`, "not valid JSON"},
		{`{"name":"bridge","version":"1.0.0","external":false}`, ""},
		{`{"name":"bridge","version":"1.0.0","extra":1}`, "unknown field"},
		{`{"name":"bridge","version":"1.0.0"}x`, "after its closing brace"},
		{`{"name":"alias","version":"1.0.0"}`, "built-in"},
		{`{"name":"bridge","version":"1.0"}`, "MAJOR.MINOR.PATCH"},
		{`{"name":"bridge","version":"1.0.0","default_enabled":true}`, "off until"},
	}
	for _, c := range cases {
		m, err := ParseManifest([]byte(c.doc), builtin)
		switch {
		case c.want == "" && (err != nil || !m.External):
			t.Errorf("%s: %v %+v", c.doc, err, m)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
}

// FuzzParseManifest: whatever a super-admin pastes, an accepted manifest is
// external, valid, off by default and not a built-in's.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"name":"bridge","version":"1.0.0","commands":[{"name":"go","permission":"everyone","aliases":["g"]}]}`))
	f.Add([]byte(`{"name":"x","version":"1.0.0","triggers":[{"kind":"follow","per":"user","window_ms":5}],"settings":{"type":"object"}}`))
	f.Add([]byte(`{"name":"core","version":"1.0.0"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := ParseManifest(doc, builtin)
		if err != nil {
			return
		}
		if !m.External || m.DefaultEnabled || m.Validate() != nil {
			t.Fatalf("accepted %+v", m)
		}
		for _, n := range builtin {
			if m.Name == n {
				t.Fatalf("accepted built-in name %s", n)
			}
		}
	})
}
