package restapi

import (
	"encoding/json"
	"testing"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestCheckWebhookURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		dev  bool
		good bool
	}{
		{"https://example.com/hook", false, true},
		{"http://example.com/hook", false, false},
		{"http://localhost:8080/hook", false, false},
		{"http://localhost:8080/hook", true, true},
		{"http://127.0.0.1/hook", true, true},
		{"http://example.com/hook", true, false},
		{"https://user:pw@example.com/", false, false},
		{"https://example.com/#frag", false, false},
		{"/relative", false, false},
		{"ftp://example.com/", false, false},
	} {
		if err := checkWebhookURL(tc.url, tc.dev); (err == nil) != tc.good {
			t.Errorf("%s (dev %v): %v, want good %v", tc.url, tc.dev, err, tc.good)
		}
	}
}

func TestSecretProperty(t *testing.T) {
	m := Module{Name: "ai", Manifest: schemas.Manifest{Settings: json.RawMessage(
		`{"type":"object","properties":{"api_key_secret":{"type":"string"},"count_secret":{"type":"integer"},"model":{"type":"string"}}}`)}}
	for _, tc := range []struct {
		property, name string
		ok             bool
	}{
		{"api_key_secret", "ai.api_key", true},
		{"count_secret", "", false}, // not a string
		{"model", "", false},        // not named *_secret
		{"other_secret", "", false}, // not in the schema
	} {
		name, ok := secretProperty(m, tc.property)
		if ok != tc.ok || name != tc.name {
			t.Errorf("%s: %q %v, want %q %v", tc.property, name, ok, tc.name, tc.ok)
		}
	}
	if _, ok := secretProperty(Module{Name: "x"}, "api_key_secret"); ok {
		t.Error("a module without settings has a secret")
	}
}

func TestReputationPointsAndTiers(t *testing.T) {
	for _, tc := range []struct {
		total int64
		score int
		tier  string
	}{
		{0, 600, "fair"},
		{-30000, 300, "poor"},
		{-1000000, 300, "poor"},
		{25000, 850, "exceptional"},
		{1000000, 850, "exceptional"},
		{7099, 670, "good"},
		{-2001, 579, "poor"},
	} {
		s := reputationPoints(tc.total)
		if s != tc.score || reputationTier(s) != tc.tier {
			t.Errorf("total %d: %d %s, want %d %s", tc.total, s, reputationTier(s), tc.score, tc.tier)
		}
	}
}

// FuzzParseManifest: a manifest from outside never panics the parser, and
// whatever it accepts is external, off by default and valid.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"name":"x","version":"1.0.0"}`))
	f.Add([]byte(`{"name":"x","version":"1.0.0","default_enabled":true}`))
	f.Add([]byte(`{"name":"alias","version":"1.0.0"}`))
	f.Add([]byte(`{"name":"x","version":"1.0.0"} {}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		m, err := parseManifest(doc)
		if err != nil {
			return
		}
		if !m.External || m.DefaultEnabled || m.Validate() != nil {
			t.Fatalf("accepted %+v", m)
		}
	})
}
