// Package core is the core module: !ping, !help [command], !commands and !about.
package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.core.
const Name = "core"

// Catalogue is what core reads to tell a community which commands it has;
// *store.Store satisfies it.
type Catalogue interface {
	Catalogue(ctx context.Context) ([]store.CatalogueEntry, error)
	CommunityModules(ctx context.Context, communityID string) (map[string]store.ModuleChoice, error)
	CommandOverrides(ctx context.Context, communityID string) (map[string]store.CommandOverride, error)
	// Aliases are the community's own commands (the alias module's).
	Aliases(ctx context.Context, communityID string) (map[string]store.Alias, error)
}

// Config builds the core module.
type Config struct {
	Catalogue Catalogue
	// Version is WaddleBot's build version, which !about tells.
	Version string
}

// externalPrefix reaches external modules, whatever the community's prefix.
const externalPrefix = "#"

// catalogueTTL keeps !help cheap: the catalogue changes rarely, and a
// module added a few seconds ago may wait that long to show up in it.
const catalogueTTL = 5 * time.Second

// Manifest is core's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "The basics: is the bot there, what can it do",
		DefaultEnabled: true,
		Commands: []schemas.CommandSpec{
			{Name: "ping", Usage: "ping", Description: "Checks that the bot is listening", Permission: schemas.PermissionEveryone},
			{Name: "help", Usage: "help [command]", Description: "Lists the commands here, or explains one", Permission: schemas.PermissionEveryone},
			{Name: "commands", Usage: "commands", Description: "Lists the commands here, by module", Permission: schemas.PermissionEveryone},
			{Name: "about", Usage: "about", Description: "Tells what WaddleBot is", Permission: schemas.PermissionEveryone},
		},
	}
}

// New builds the core module.
func New(cfg Config) actions.Module {
	c := &module{catalogue: cfg.Catalogue, version: cfg.Version, now: time.Now}
	if c.version == "" {
		c.version = "dev"
	}
	return actions.Module{Manifest: Manifest(), Handle: c.handle}
}

type module struct {
	catalogue Catalogue
	version   string
	now       func() time.Time

	mu        sync.Mutex
	cached    []store.CatalogueEntry
	fetchedAt time.Time
}

func (c *module) handle(ctx context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
	var text string
	var err error
	switch inv.Command {
	case "ping":
		text = "pong"
	case "about":
		text = fmt.Sprintf("WaddleBot %s: one bot for Twitch, Discord and Slack, with one identity across them.", c.version)
	case "help":
		text, err = c.help(ctx, inv)
	case "commands":
		text, err = c.commands(ctx, inv)
	default:
		return nil, fmt.Errorf("%w: core has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

// available is a command a community can use, as its users type it.
type available struct {
	module  string
	prefix  string
	spec    schemas.CommandSpec
	who     string
	builtin bool
}

func (a available) typed() string { return a.prefix + a.spec.Name }

// availableCommands lists the commands of the modules the community has on,
// minus the commands it switched off.
func (c *module) availableCommands(ctx context.Context, inv *schemas.Invocation) ([]available, error) {
	if c.catalogue == nil {
		return nil, errors.New("core: built without a catalogue")
	}
	entries, err := c.entries(ctx)
	if err != nil {
		return nil, err
	}
	choices, err := c.catalogue.CommunityModules(ctx, inv.Community.ID)
	if err != nil {
		return nil, fmt.Errorf("core: unable to read the community's modules: %w", err)
	}
	overrides, err := c.catalogue.CommandOverrides(ctx, inv.Community.ID)
	if err != nil {
		return nil, fmt.Errorf("core: unable to read the community's command overrides: %w", err)
	}
	prefix := communityPrefix(inv)
	var out []available
	seen := map[string]bool{}
	for _, e := range entries {
		m := e.Manifest
		enabled := m.DefaultEnabled
		if choice, ok := choices[m.Name]; ok {
			enabled = choice.Enabled
		}
		if !enabled {
			continue
		}
		p := prefix
		if m.External {
			p = externalPrefix
		}
		for _, spec := range m.Commands {
			o := overrides[spec.Name]
			if o.Enabled != nil && !*o.Enabled {
				continue
			}
			typed := p + spec.Name
			if seen[typed] {
				continue // two modules claiming one name: list it once
			}
			seen[typed] = true
			who := spec.Permission
			if o.Permission != nil {
				who = *o.Permission
			}
			if who == "" {
				who = schemas.PermissionEveryone
			}
			out = append(out, available{module: m.Name, prefix: p, spec: spec, who: who, builtin: !m.External})
		}
	}
	return out, nil
}

// byName orders built-in modules' commands before external ones, each by name.
func byName(a, b available) int {
	if a.builtin != b.builtin {
		if a.builtin {
			return -1
		}
		return 1
	}
	return strings.Compare(a.spec.Name, b.spec.Name)
}

// byModule orders built-in modules before external ones, each module by
// name and its commands by name.
func byModule(a, b available) int {
	if a.builtin != b.builtin || a.module == b.module {
		return byName(a, b)
	}
	return strings.Compare(a.module, b.module)
}

// entries is the catalogue, read at most once per catalogueTTL.
func (c *module) entries(ctx context.Context) ([]store.CatalogueEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && c.now().Sub(c.fetchedAt) < catalogueTTL {
		return c.cached, nil
	}
	entries, err := c.catalogue.Catalogue(ctx)
	if err != nil {
		return nil, fmt.Errorf("core: unable to read the catalogue: %w", err)
	}
	if entries == nil {
		entries = []store.CatalogueEntry{}
	}
	c.cached, c.fetchedAt = entries, c.now()
	return entries, nil
}

func communityPrefix(inv *schemas.Invocation) string {
	if inv.Community.Prefix != "" {
		return inv.Community.Prefix
	}
	return "!"
}

func (c *module) help(ctx context.Context, inv *schemas.Invocation) (string, error) {
	cmds, err := c.availableCommands(ctx, inv)
	if err != nil {
		return "", err
	}
	slices.SortStableFunc(cmds, byName)
	prefix := communityPrefix(inv)
	if len(inv.Args) == 0 {
		if len(cmds) == 0 {
			return "No commands are on here.", nil
		}
		names := make([]string, len(cmds))
		for i, a := range cmds {
			names[i] = a.typed()
		}
		return fmt.Sprintf("Commands: %s. Type %shelp <command> for details.", strings.Join(names, ", "), prefix), nil
	}
	asked := inv.Args[0]
	name := strings.ToLower(asked)
	for _, p := range []string{prefix, externalPrefix, "!"} {
		if strings.HasPrefix(name, p) {
			name = strings.TrimPrefix(name, p)
			break
		}
	}
	for _, a := range cmds {
		if a.spec.Name == name || slices.Contains(a.spec.Aliases, name) {
			return describe(a), nil
		}
	}
	// A command wins over an alias of the same name, as in the router.
	aliases, err := c.catalogue.Aliases(ctx, inv.Community.ID)
	if err != nil {
		return "", fmt.Errorf("core: unable to read the community's aliases: %w", err)
	}
	if a, ok := aliases[name]; ok {
		return fmt.Sprintf("%s%s is an alias for %s", prefix, a.Name, aliasTarget(a.Target, prefix)), nil
	}
	return fmt.Sprintf("No command named %s.", asked), nil
}

// aliasTarget shows an alias's stored target ("so {1}", "#weather {1}") as
// users type it.
func aliasTarget(target, prefix string) string {
	if strings.HasPrefix(target, externalPrefix) {
		return target
	}
	return prefix + target
}

// describe reads "!quote — Quotes from the community. Usage: !quote [id].
// Aliases: !q. Who: everyone."
func describe(a available) string {
	var b strings.Builder
	b.WriteString(a.typed())
	if d := strings.TrimRight(strings.TrimSpace(a.spec.Description), "."); d != "" {
		b.WriteString(" — " + d + ".")
	}
	b.WriteString(" Usage: " + prefixed(a.prefix, a.spec, usage(a.spec)) + ".")
	if len(a.spec.Aliases) > 0 {
		aliases := make([]string, len(a.spec.Aliases))
		for i, alias := range a.spec.Aliases {
			aliases[i] = a.prefix + alias
		}
		b.WriteString(" Aliases: " + strings.Join(aliases, ", ") + ".")
	}
	b.WriteString(" Who: " + a.who + ".")
	return b.String()
}

// prefixed puts the prefix before every alternative of a usage that names
// the command ("quote [n] | quote add <text>" → "!quote [n] | !quote add <text>").
func prefixed(prefix string, spec schemas.CommandSpec, u string) string {
	alts := strings.Split(u, " | ")
	for i, alt := range alts {
		alt = strings.TrimSpace(alt)
		first, _, _ := strings.Cut(alt, " ")
		if i == 0 || first == spec.Name || slices.Contains(spec.Aliases, first) {
			alt = prefix + alt
		}
		alts[i] = alt
	}
	return strings.Join(alts, " | ")
}

// usage accepts manifests that write the command word in their usage
// ("quote add <text>") and those that give the arguments only ("<text>").
func usage(spec schemas.CommandSpec) string {
	u := strings.TrimSpace(spec.Usage)
	if u == "" {
		return spec.Name
	}
	first, _, _ := strings.Cut(u, " ")
	if first == spec.Name || slices.Contains(spec.Aliases, first) {
		return u
	}
	return spec.Name + " " + u
}

func (c *module) commands(ctx context.Context, inv *schemas.Invocation) (string, error) {
	cmds, err := c.availableCommands(ctx, inv)
	if err != nil {
		return "", err
	}
	if len(cmds) == 0 {
		return "No commands are on here.", nil
	}
	slices.SortStableFunc(cmds, byModule)
	var groups []string
	for i, a := range cmds {
		if i == 0 || cmds[i-1].module != a.module {
			groups = append(groups, a.module+":")
		}
		groups[len(groups)-1] += " " + a.typed()
	}
	text := strings.Join(groups, " | ")
	aliases, err := c.catalogue.Aliases(ctx, inv.Community.ID)
	if err != nil {
		return "", fmt.Errorf("core: unable to read the community's aliases: %w", err)
	}
	if len(aliases) == 0 {
		return text, nil
	}
	names := make([]string, 0, len(aliases))
	for name := range aliases {
		names = append(names, name)
	}
	slices.Sort(names)
	return text + " | " + aliasGroup(names, communityPrefix(inv), schemas.TextLimit(inv.Event.Platform)-utf8.RuneCountInString(text)-3), nil
}

// aliasGroup lists a community's aliases in room characters if it can,
// else as many as fit and how many more there are: a community may have
// hundreds, and the list of commands must stay one message.
func aliasGroup(names []string, prefix string, room int) string {
	group := "aliases:"
	for i, name := range names {
		more := ""
		if rest := len(names) - i - 1; rest > 0 {
			more = fmt.Sprintf(" (+%d more)", rest)
		}
		next := group + " " + prefix + name
		if utf8.RuneCountInString(next+more) > room {
			return group + fmt.Sprintf(" (+%d more)", len(names)-i)
		}
		group = next
	}
	return group
}
