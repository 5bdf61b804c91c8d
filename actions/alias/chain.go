package alias

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
)

// externalPrefix reaches external modules' commands, whatever the
// community's prefix.
const externalPrefix = router.ExternalPrefix

// catalogue is every command word there is, with the module that has it:
// built-in ones (typed with the community's prefix) and external ones
// (typed with '#'), names and command aliases alike.
type catalogue struct {
	builtin  map[string]string
	external map[string]string
	// on tells each module's default: on unless a community turns it off.
	on map[string]bool
}

// indexCatalogue indexes the catalogue as the router's registry does: the
// first module (by name) to claim a word keeps it.
func indexCatalogue(entries []store.CatalogueEntry) catalogue {
	c := catalogue{builtin: map[string]string{}, external: map[string]string{}, on: map[string]bool{}}
	for _, e := range entries {
		c.on[e.Manifest.Name] = e.Manifest.DefaultEnabled
		table := c.builtin
		if e.Manifest.External {
			table = c.external
		}
		for _, spec := range e.Manifest.Commands {
			for _, word := range append([]string{spec.Name}, spec.Aliases...) {
				if _, taken := table[word]; !taken {
					table[word] = e.Manifest.Name
				}
			}
		}
	}
	return c
}

// parseTarget reads a stored target's command word exactly as the router
// will after expanding it. The first word never holds a variable (add
// refuses that), so expansion cannot change it.
func parseTarget(t string) (router.Command, bool) {
	if strings.HasPrefix(t, externalPrefix) {
		return router.Parse(t, externalPrefix)
	}
	return router.ParseBare(t)
}

// chain is where an alias leads, step by step as the router expands it.
type chain struct {
	aliases []string // the aliases expanded, the first one included; on a loop the repeated one ends it
	end     string   // the command reached, as typed without the community prefix ("so", "#weather")
	module  string   // the module of end
	loop    bool     // an alias came back
	broken  string   // the target word that is neither a command nor an alias, as typed without prefix
}

// follow expands name through targets (alias name → stored target) the way
// router.routeCommand does: a command word wins over an alias of that name,
// and an external word that no external module has falls back to the
// community's aliases.
func follow(name string, targets map[string]string, cat catalogue) chain {
	var ch chain
	seen := map[string]bool{}
	for cur := name; ; {
		ch.aliases = append(ch.aliases, cur)
		if seen[cur] {
			ch.loop = true
			return ch
		}
		seen[cur] = true
		cmd, ok := parseTarget(targets[cur])
		if !ok {
			ch.broken = targets[cur]
			return ch
		}
		if cmd.Prefix == externalPrefix {
			if mod, ok := cat.external[cmd.Name]; ok {
				ch.end, ch.module = externalPrefix+cmd.Name, mod
				return ch
			}
		} else if mod, ok := cat.builtin[cmd.Name]; ok {
			ch.end, ch.module = cmd.Name, mod
			return ch
		}
		if _, ok := targets[cmd.Name]; !ok {
			ch.broken = cmd.Prefix + cmd.Name
			return ch
		}
		cur = cmd.Name
	}
}

// render shows a chain as users type it: "!a → !b → !so".
func (ch chain) render(p string) string {
	parts := make([]string, 0, len(ch.aliases)+1)
	for _, a := range ch.aliases {
		parts = append(parts, p+a)
	}
	switch {
	case ch.end != "":
		parts = append(parts, display(ch.end, p))
	case ch.broken != "" && !ch.loop:
		parts = append(parts, display(ch.broken, p))
	}
	return strings.Join(parts, " → ")
}

// expansions is how many aliases the router expands for the chain.
func (ch chain) expansions() int { return len(ch.aliases) }

// problem says why a chain will not run, or "".
func (ch chain) problem(p string, maxDepth int) string {
	switch {
	case ch.loop:
		return "it loops: " + ch.render(p)
	case ch.broken != "":
		return fmt.Sprintf("%s is neither a command nor an alias (%s)", display(ch.broken, p), ch.render(p))
	case ch.module == Name:
		return "an alias cannot run " + p + Name
	case ch.expansions() > maxDepth:
		return fmt.Sprintf("it goes through more than %d aliases: %s", maxDepth, ch.render(p))
	}
	return ""
}

// check tells whether adding alias name (already in targets) leaves every
// chain through it runnable: no loop, no dead end, not deeper than the
// router follows. Aliases that led to name before it existed count too.
func (cat catalogue) check(name string, targets map[string]string, p string, maxDepth int) string {
	ch := follow(name, targets, cat)
	switch {
	case ch.loop:
		return fmt.Sprintf("That would make a loop: %s. An alias must lead to a command.", ch.render(p))
	case ch.broken != "":
		return fmt.Sprintf("That leads nowhere: %s; %s is neither a command nor an alias. Fix or remove %s%s first.",
			ch.render(p), display(ch.broken, p), p, ch.aliases[len(ch.aliases)-1])
	case ch.module == Name:
		return fmt.Sprintf("An alias cannot run %s%s.", p, Name)
	case ch.expansions() > maxDepth:
		return fmt.Sprintf("Too many aliases in a row: %s. An alias may go through at most %d aliases, itself included.", ch.render(p), maxDepth)
	}
	others := make([]string, 0, len(targets))
	for a := range targets {
		if a != name {
			others = append(others, a)
		}
	}
	sort.Strings(others)
	for _, a := range others {
		ch := follow(a, targets, cat)
		if !slices.Contains(ch.aliases, name) {
			continue
		}
		switch {
		case ch.loop:
			return fmt.Sprintf("That would make a loop: %s. An alias must lead to a command.", ch.render(p))
		case ch.expansions() > maxDepth:
			return fmt.Sprintf("That would make %s%s go through too many aliases: %s. An alias may go through at most %d aliases, itself included.",
				p, a, ch.render(p), maxDepth)
		}
	}
	return ""
}
