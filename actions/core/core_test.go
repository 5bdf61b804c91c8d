package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// fakeCatalogue serves one community's view of the catalogue.
type fakeCatalogue struct {
	entries   []store.CatalogueEntry
	choices   map[string]store.ModuleChoice
	overrides map[string]store.CommandOverride
	aliases   map[string]store.Alias
	reads     int
	err       error
}

func (f *fakeCatalogue) Catalogue(context.Context) ([]store.CatalogueEntry, error) {
	f.reads++
	return f.entries, f.err
}

func (f *fakeCatalogue) CommunityModules(context.Context, string) (map[string]store.ModuleChoice, error) {
	return f.choices, nil
}

func (f *fakeCatalogue) CommandOverrides(context.Context, string) (map[string]store.CommandOverride, error) {
	return f.overrides, nil
}

func (f *fakeCatalogue) Aliases(context.Context, string) (map[string]store.Alias, error) {
	return f.aliases, nil
}

func ptr[T any](v T) *T { return &v }

// sampleCatalogue: core; memories (on by default) with !url switched off and
// !quote raised to subscribers; ai (on by default) switched off by the
// community; music (off by default); weather, external, switched on.
func sampleCatalogue() *fakeCatalogue {
	return &fakeCatalogue{
		entries: []store.CatalogueEntry{
			{Manifest: schemas.Manifest{Name: "ai", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
				{Name: "ai", Usage: "ai <prompt>", Permission: schemas.PermissionEveryone}}}, Builtin: true},
			{Manifest: Manifest(), Builtin: true},
			{Manifest: schemas.Manifest{Name: "memories", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
				{Name: "quote", Aliases: []string{"q"}, Usage: "quote [id|random]", Description: "Quotes from the community.", Permission: schemas.PermissionEveryone},
				{Name: "url", Usage: "url <name>", Permission: schemas.PermissionEveryone},
			}}, Builtin: true},
			{Manifest: schemas.Manifest{Name: "music", Version: "1.0.0", Commands: []schemas.CommandSpec{
				{Name: "sr", Permission: schemas.PermissionEveryone}}}, Builtin: true},
			{Manifest: schemas.Manifest{Name: "weather", Version: "1.0.0", External: true, Commands: []schemas.CommandSpec{
				{Name: "forecast", Usage: "<city>", Description: "Tomorrow's weather", Permission: schemas.PermissionEveryone}}}},
		},
		choices: map[string]store.ModuleChoice{
			"ai":      {Enabled: false},
			"weather": {Enabled: true},
		},
		overrides: map[string]store.CommandOverride{
			"url":   {Enabled: ptr(false)},
			"quote": {Permission: ptr("subscriber")},
			"ping":  {Enabled: ptr(true)},
		},
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name    string
		command string
		args    []string
		prefix  string
		want    string
	}{
		{"ping", "ping", nil, "!", "pong"},
		{"about", "about", nil, "!", "WaddleBot 2.3.4: one bot for Twitch, Discord and Slack, with one identity across them."},
		{"help lists what is on", "help", nil, "!",
			"Commands: !about, !commands, !help, !ping, !quote, #forecast. Type !help <command> for details."},
		{"help uses the community's prefix", "help", nil, "?",
			"Commands: ?about, ?commands, ?help, ?ping, ?quote, #forecast. Type ?help <command> for details."},
		{"help on a command", "help", []string{"quote"}, "!",
			"!quote — Quotes from the community. Usage: !quote [id|random]. Aliases: !q. Who: subscriber."},
		{"help on an alias, with prefix", "help", []string{"!q"}, "!",
			"!quote — Quotes from the community. Usage: !quote [id|random]. Aliases: !q. Who: subscriber."},
		{"help with the community's prefix", "help", []string{"?ping"}, "?",
			"?ping — Checks that the bot is listening. Usage: ?ping. Who: everyone."},
		{"help on an external command", "help", []string{"#forecast"}, "!",
			"#forecast — Tomorrow's weather. Usage: #forecast <city>. Who: everyone."},
		{"help ignores case", "help", []string{"PING"}, "!",
			"!ping — Checks that the bot is listening. Usage: !ping. Who: everyone."},
		{"help on a command switched off", "help", []string{"url"}, "!", "No command named url."},
		{"help on a disabled module's command", "help", []string{"!ai"}, "!", "No command named !ai."},
		{"help on a module off by default", "help", []string{"sr"}, "!", "No command named sr."},
		{"help on nothing known", "help", []string{"dance"}, "!", "No command named dance."},
		{"commands", "commands", nil, "!", "core: !about !commands !help !ping | memories: !quote | weather: #forecast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Config{Catalogue: sampleCatalogue(), Version: "2.3.4"})
			inv := actionstest.Invocation(Name, tt.command, tt.args...)
			inv.Community.Prefix = tt.prefix
			res, err := m.Handle(context.Background(), inv, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Replies) != 1 {
				t.Fatalf("%d replies, want 1", len(res.Replies))
			}
			if got := res.Replies[0].Text; got != tt.want {
				t.Errorf("reply\n got %q\nwant %q", got, tt.want)
			}
			if res.InvocationID != inv.ID {
				t.Errorf("result for %s, want %s", res.InvocationID, inv.ID)
			}
		})
	}
}

func TestManifestIsValid(t *testing.T) {
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if m.Name != "core" || m.Version != "1.0.0" || !m.DefaultEnabled || m.Writes || m.External {
		t.Errorf("manifest %+v", m)
	}
	for _, c := range []string{"ping", "help", "commands", "about"} {
		if spec, ok := m.Command(c); !ok || spec.Permission != schemas.PermissionEveryone {
			t.Errorf("command %s missing or not for everyone", c)
		}
	}
}

func TestUnknownCommandIsInvalid(t *testing.T) {
	m := New(Config{Catalogue: sampleCatalogue()})
	_, err := m.Handle(context.Background(), actionstest.Invocation(Name, "dance"), nil)
	if !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("error %v, want one wrapping ErrInvalid", err)
	}
}

func TestCatalogueIsCachedBriefly(t *testing.T) {
	cat := sampleCatalogue()
	c := &module{catalogue: cat, version: "x", now: time.Now}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c.now = func() time.Time { return now }
	inv := actionstest.Invocation(Name, "help")
	for range 3 {
		if _, err := c.handle(context.Background(), inv, nil); err != nil {
			t.Fatal(err)
		}
	}
	if cat.reads != 1 {
		t.Fatalf("%d catalogue reads for three !help within the TTL, want 1", cat.reads)
	}
	cat.entries = append(cat.entries, store.CatalogueEntry{Manifest: schemas.Manifest{Name: "zoo", Version: "1.0.0", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "zebra", Permission: schemas.PermissionEveryone}}}, Builtin: true})
	now = now.Add(catalogueTTL)
	res, err := c.handle(context.Background(), inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cat.reads != 2 {
		t.Fatalf("%d catalogue reads after the TTL, want 2", cat.reads)
	}
	if got := res.Replies[0].Text; got != "Commands: !about, !commands, !help, !ping, !quote, !zebra, #forecast. Type !help <command> for details." {
		t.Errorf("after refresh: %q", got)
	}
}

func TestCatalogueErrorsAreReturned(t *testing.T) {
	cat := sampleCatalogue()
	cat.err = errors.New("database on fire")
	m := New(Config{Catalogue: cat})
	if _, err := m.Handle(context.Background(), actionstest.Invocation(Name, "commands"), nil); err == nil || !errors.Is(err, cat.err) {
		t.Fatalf("error %v, want the catalogue's", err)
	}
	// ping needs no catalogue.
	if res, err := m.Handle(context.Background(), actionstest.Invocation(Name, "ping"), nil); err != nil || res.Replies[0].Text != "pong" {
		t.Fatalf("ping: %v %+v", err, res)
	}
}

func TestAliasesInCommandsAndHelp(t *testing.T) {
	cat := sampleCatalogue()
	cat.aliases = map[string]store.Alias{
		"hug":  {Name: "hug", Target: "quote {1|nobody}"},
		"lurk": {Name: "lurk", Target: "#forecast {1|berlin}"},
		// A command wins over an alias of its name, in the router and here.
		"ping": {Name: "ping", Target: "quote 1"},
	}
	tests := []struct {
		name    string
		command string
		args    []string
		prefix  string
		want    string
	}{
		{"commands lists the aliases", "commands", nil, "!",
			"core: !about !commands !help !ping | memories: !quote | weather: #forecast | aliases: !hug !lurk !ping"},
		{"with the community's prefix", "commands", nil, "?",
			"core: ?about ?commands ?help ?ping | memories: ?quote | weather: #forecast | aliases: ?hug ?lurk ?ping"},
		{"help on an alias", "help", []string{"hug"}, "!", "!hug is an alias for !quote {1|nobody}"},
		{"help on an alias typed with its prefix", "help", []string{"?hug"}, "?", "?hug is an alias for ?quote {1|nobody}"},
		{"help on an alias of an external command", "help", []string{"!lurk"}, "!", "!lurk is an alias for #forecast {1|berlin}"},
		{"help prefers the command", "help", []string{"ping"}, "!", "!ping — Checks that the bot is listening. Usage: !ping. Who: everyone."},
		{"help on neither", "help", []string{"nope"}, "!", "No command named nope."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Config{Catalogue: cat})
			inv := actionstest.Invocation(Name, tt.command, tt.args...)
			inv.Community.Prefix = tt.prefix
			res, err := m.Handle(context.Background(), inv, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Replies[0].Text; got != tt.want {
				t.Errorf("reply\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestManyAliasesStayOneMessage(t *testing.T) {
	cat := sampleCatalogue()
	cat.aliases = map[string]store.Alias{}
	for i := range 200 {
		name := fmt.Sprintf("alias-number-%03d", i)
		cat.aliases[name] = store.Alias{Name: name, Target: "ping"}
	}
	m := New(Config{Catalogue: cat})
	for _, platform := range []string{schemas.PlatformTwitch, schemas.PlatformDiscord} {
		inv := actionstest.Invocation(Name, "commands")
		inv.Event.Platform = platform
		res, err := m.Handle(context.Background(), inv, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := res.Replies[0].Text
		if n := utf8.RuneCountInString(got); n > schemas.TextLimit(platform) {
			t.Errorf("%s: %d characters, over the limit of %d", platform, n, schemas.TextLimit(platform))
		}
		if !strings.HasPrefix(got, "core: !about !commands !help !ping | memories: !quote | weather: #forecast | aliases: !alias-number-000 !alias-number-001") {
			t.Errorf("%s: %q", platform, got)
		}
		shown := strings.Count(got, "!alias-number-")
		if want := fmt.Sprintf(" (+%d more)", 200-shown); !strings.HasSuffix(got, want) {
			t.Errorf("%s: %q does not end with %q", platform, got, want)
		}
	}
}
