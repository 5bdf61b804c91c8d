// Package builtin lists the modules built into the binary, for `waddlebot
// dev` (all of them) and `waddlebot action <name>` (one).
package builtin

import (
	"fmt"
	"sort"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/alerts"
	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/actions/calendar"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/actions/identity"
	"github.com/waddlebot/waddlebot/actions/inventory"
	"github.com/waddlebot/waddlebot/actions/labels"
	"github.com/waddlebot/waddlebot/actions/memories"
	musicsetup "github.com/waddlebot/waddlebot/actions/music/setup"
	"github.com/waddlebot/waddlebot/actions/reputation"
	"github.com/waddlebot/waddlebot/actions/shoutout"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/version"
)

// Deps is what built-in modules may use.
type Deps struct {
	Store *store.Store
	// AliasDepth is the router's ALIAS_DEPTH: aliases are checked against it when added.
	AliasDepth int
	// Conn carries modules' NATS requests (the wb.api lookups of shoutout and identity).
	Conn *natsx.Conn
	// AI holds the AI module's defaults (WADDLEBOT_AI_*); nil reads them from the environment.
	AI *ai.Defaults
}

// Modules returns every built-in module by name.
func Modules(d Deps) map[string]actions.Module {
	return map[string]actions.Module{
		"core":       core.New(core.Config{Catalogue: d.Store, Version: version.Version}),
		"alias":      alias.New(alias.Config{Store: d.Store, MaxDepth: d.AliasDepth}),
		"labels":     labels.New(labels.Config{Store: d.Store}),
		"memories":   memories.New(memories.Config{Store: d.Store}),
		"inventory":  inventory.New(inventory.Config{Store: d.Store}),
		"reputation": reputation.New(reputation.Config{Store: d.Store}),
		"shoutout":   shoutout.New(shoutout.Config{Store: d.Store, NATS: d.Conn}),
		"calendar":   calendar.New(calendar.Config{Store: d.Store}),
		"identity":   identity.New(identity.Config{Store: d.Store, NATS: d.Conn}),
		"ai":         ai.New(ai.Config{Store: d.Store, Conn: d.Conn, Defaults: d.AI}),
		"alerts":     alerts.New(),
		"music":      musicsetup.Module(d.Store),
	}
}

// Names lists the built-in modules, sorted.
func Names() []string {
	names := make([]string, 0)
	for n := range Modules(Deps{}) {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Module returns one built-in module.
func Module(d Deps, name string) (actions.Module, error) {
	m, ok := Modules(d)[name]
	if !ok {
		return actions.Module{}, fmt.Errorf("no built-in module %q (have: %v)", name, Names())
	}
	return m, nil
}
