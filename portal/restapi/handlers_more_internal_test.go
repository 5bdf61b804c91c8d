package restapi

import (
	"encoding/json"
	"testing"

	"github.com/waddlebot/waddlebot/schemas"
)

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
