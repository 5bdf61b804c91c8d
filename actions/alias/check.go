package alias

import (
	"context"
	"fmt"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/store"
)

// Check validates an alias exactly as `!alias add` does, for writers other
// than the module (the portal): rawName and rawTarget as a moderator types
// them, prefix the community's. It locks the community's aliases in tx, so
// the caller's insert in the same transaction cannot race a chat add into a
// loop. A refused alias comes back as the module's own message in problem;
// err is for failures to check at all. maxDepth <= 0 is ALIAS_DEPTH's default.
func Check(ctx context.Context, st *store.Store, tx pgx.Tx, communityID, prefix, rawName, rawTarget string, maxDepth int) (name, target, problem string, err error) {
	if maxDepth <= 0 {
		maxDepth = config.Defaults().AliasDepth
	}
	name, target, _, _, problem, err = prepare(ctx, st, tx, communityID, prefix, rawName, rawTarget, maxDepth)
	return name, target, problem, err
}

// prepare is add's validation, shared with Check.
func prepare(ctx context.Context, st *store.Store, tx pgx.Tx, communityID, p, rawName, rawTarget string, maxDepth int) (name, target string, cat catalogue, ch chain, problem string, err error) {
	if rawName == "" || rawTarget == "" {
		return "", "", cat, ch, fmt.Sprintf("Usage: %salias add <name> <command…>, for example %salias add q %squote {1|random}", p, p, p), nil
	}
	name, problem = parseName(rawName, p)
	if problem != "" {
		return "", "", cat, ch, problem, nil
	}
	if problem := checkText(rawTarget); problem != "" {
		return "", "", cat, ch, problem, nil
	}
	target, problem = normalize(rawTarget, p)
	if problem != "" {
		return "", "", cat, ch, problem, nil
	}
	if n := utf8.RuneCountInString(target); n > MaxTarget {
		return "", "", cat, ch, fmt.Sprintf("That command is %d characters long; an alias holds at most %d.", n, MaxTarget), nil
	}

	entries, err := st.Catalogue(ctx)
	if err != nil {
		return "", "", cat, ch, "", fmt.Errorf("alias: unable to read the catalogue: %w", err)
	}
	cat = indexCatalogue(entries)
	if mod, ok := cat.builtin[name]; ok {
		return "", "", cat, ch, fmt.Sprintf("%s%s is already a command (module %s): pick another name.", p, name, mod), nil
	}
	if mod, ok := cat.external[name]; ok {
		return "", "", cat, ch, fmt.Sprintf("#%s is already a command (module %s): pick another name.", name, mod), nil
	}

	if err := lockAliases(ctx, tx, communityID); err != nil {
		return "", "", cat, ch, "", err
	}
	existing, err := readAliases(ctx, tx, communityID)
	if err != nil {
		return "", "", cat, ch, "", err
	}
	targets := make(map[string]string, len(existing)+1)
	for _, a := range existing {
		targets[a.Name] = a.Target
	}
	if old, ok := targets[name]; ok {
		return "", "", cat, ch, fmt.Sprintf("Alias %s%s exists already (%s); remove it first with %salias remove %s.",
			p, name, display(old, p), p, name), nil
	}
	cmd, _ := parseTarget(target) // normalize parsed it
	switch {
	case cmd.Prefix == externalPrefix:
		if _, ok := cat.external[cmd.Name]; !ok {
			return "", "", cat, ch, fmt.Sprintf("There is no external command #%s. %scommands lists what there is.", cmd.Name, p), nil
		}
	case cat.builtin[cmd.Name] == Name:
		return "", "", cat, ch, fmt.Sprintf("An alias cannot run %salias.", p), nil
	case cat.builtin[cmd.Name] == "" && cmd.Name != name:
		if _, ok := targets[cmd.Name]; !ok {
			return "", "", cat, ch, fmt.Sprintf("There is no command or alias %s%s. %scommands lists what there is.", p, cmd.Name, p), nil
		}
	}
	targets[name] = target
	if problem := cat.check(name, targets, p, maxDepth); problem != "" {
		return "", "", cat, ch, problem, nil
	}
	return name, target, cat, follow(name, targets, cat), "", nil
}

// Lock serializes a change to a community's aliases made outside the
// module (the portal's remove) with the module's own adds and removes.
func Lock(ctx context.Context, tx pgx.Tx, communityID string) error {
	return lockAliases(ctx, tx, communityID)
}
