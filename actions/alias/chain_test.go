package alias

import (
	"context"
	"errors"
	"testing"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

func testCatalogue() catalogue {
	return indexCatalogue([]store.CatalogueEntry{
		{Manifest: Manifest(), Builtin: true},
		{Manifest: schemas.Manifest{Name: "echo", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
			{Name: "so", Aliases: []string{"shoutout"}, Permission: schemas.PermissionEveryone}}}, Builtin: true},
		// A later module claiming a taken word does not get it, as in the router.
		{Manifest: schemas.Manifest{Name: "zzz", Version: "1.0.0", Commands: []schemas.CommandSpec{
			{Name: "so", Permission: schemas.PermissionEveryone}}}, Builtin: true},
		{Manifest: schemas.Manifest{Name: "weatherext", Version: "1.0.0", External: true, Commands: []schemas.CommandSpec{
			{Name: "weather", Permission: schemas.PermissionEveryone}}}},
	})
}

func TestFollowMirrorsTheRouter(t *testing.T) {
	cat := testCatalogue()
	if cat.builtin["so"] != "echo" || cat.builtin["shoutout"] != "echo" || cat.external["weather"] != "weatherext" || cat.on["zzz"] {
		t.Fatalf("catalogue %+v", cat)
	}
	targets := map[string]string{
		"a":    "so {1}",
		"b":    "a x",
		"ext":  "#weather {1|berlin}",
		"hash": "#b", // no external #b: the router falls back to the alias
		"so":   "a",  // never reached: the command wins
		"dead": "gone",
		"odd":  "{1} first",
		"l1":   "l2",
		"l2":   "l1",
	}
	for _, tt := range []struct {
		name, render string
		module       string
		loop         bool
		broken       string
	}{
		{"a", "!a → !so", "echo", false, ""},
		{"b", "!b → !a → !so", "echo", false, ""},
		{"ext", "!ext → #weather", "weatherext", false, ""},
		{"hash", "!hash → !b → !a → !so", "echo", false, ""},
		{"dead", "!dead → !gone", "", false, "gone"},
		{"odd", "!odd → !{1} first", "", false, "{1} first"},
		{"l1", "!l1 → !l2 → !l1", "", true, ""},
	} {
		ch := follow(tt.name, targets, cat)
		if got := ch.render("!"); got != tt.render || ch.module != tt.module || ch.loop != tt.loop || ch.broken != tt.broken {
			t.Errorf("%s: %q %+v, want %q", tt.name, got, ch, tt.render)
		}
	}
}

func TestUsesCount(t *testing.T) {
	for target, want := range map[string]bool{
		"so {count}":        true,
		"so {count|zero}":   true,
		"so {1} {count}":    true,
		"so count":          false,
		"so {counter}":      false,
		"so {{count}":       false, // "{{count}" names "{count", as Expand reads it
		"so {count":         false,
		"so {user} {count}": true,
	} {
		if got := usesCount(target); got != want {
			t.Errorf("usesCount(%q) = %v, want %v", target, got, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for _, tt := range []struct{ raw, prefix, want string }{
		{"!so {1|nobody}", "!", "so {1|nobody}"},
		{"so {1|nobody}", "!", "so {1|nobody}"},
		{"?so  two  spaces ", "?", "so two  spaces"},
		{"!SO Bob", "?", "so Bob"},
		{"#weather {1|berlin}", "!", "#weather {1|berlin}"},
		{"#Weather", "!", "#weather"},
		{"~~so x", "~~", "so x"},
		{"so\tx", "!", "so x"},
	} {
		got, problem := normalize(tt.raw, tt.prefix)
		if got != tt.want || problem != "" {
			t.Errorf("normalize(%q, %q) = %q %q, want %q", tt.raw, tt.prefix, got, problem, tt.want)
		}
	}
	for _, raw := range []string{"", "!", "{1}", "so{1}", "#", "1up", "!!so", "é"} {
		if got, problem := normalize(raw, "!"); problem == "" {
			t.Errorf("normalize(%q) = %q, want a refusal", raw, got)
		}
	}
}

func TestManifestIsValid(t *testing.T) {
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	spec, ok := m.Command(Name)
	if m.Name != "alias" || m.Version != "1.0.0" || !m.DefaultEnabled || !m.Writes || m.External || len(m.Commands) != 1 ||
		!ok || spec.Permission != "moderator" {
		t.Errorf("manifest %+v", m)
	}
}

func TestOtherCommandsAreInvalid(t *testing.T) {
	m := New(Config{})
	if _, err := m.Handle(context.Background(), actionstest.Invocation(Name, "dance"), nil); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("error %v, want one wrapping ErrInvalid", err)
	}
}
