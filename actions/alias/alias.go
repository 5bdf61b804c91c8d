// Package alias is the alias module: a community's moderators give their own
// names to command lines (`!alias add q !quote {1|random}`). The module keeps
// the definitions; the router expands them before dispatch (router.Expand),
// so the target's permissions and cooldowns apply and {count} is counted once
// per invocation.
package alias

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name and its one command.
const Name = "alias"

// MaxTarget is the longest command line an alias may hold, in characters:
// short enough that !alias show fits one Twitch message (the table allows 500).
const MaxTarget = 400

// MaxName is the longest alias name.
const MaxName = 32

// listTargetClip keeps `!alias list` dense: a target longer than this is
// clipped there; `!alias show` gives it whole.
const listTargetClip = 60

// Config builds the alias module.
type Config struct {
	Store *store.Store
	// MaxDepth is how many aliases one use may expand through, the router's
	// ALIAS_DEPTH: a chain deeper than the router follows is refused at add
	// time rather than failing silently in chat. Default: ALIAS_DEPTH's default.
	MaxDepth int
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "The community's own commands: short names for command lines",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{{
			Name:        Name,
			Usage:       "alias add <name> <command…> | remove <name> | list [page] | show <name>",
			Description: "Makes, removes, lists and shows the community's aliases",
			Permission:  string(schemas.RoleModerator),
		}},
	}
}

// New builds the alias module.
func New(cfg Config) actions.Module {
	m := &module{store: cfg.Store, maxDepth: cfg.MaxDepth}
	if m.maxDepth <= 0 {
		m.maxDepth = config.Defaults().AliasDepth
	}
	return actions.Module{Manifest: Manifest(), Handle: m.handle, Housekeep: m.housekeep}
}

// runRecordAge outlives WB_COMMANDS' default MaxAge: past it no redelivery
// can ask for a run's count again.
const runRecordAge = 25 * time.Hour

func (m *module) housekeep(ctx context.Context) error {
	_, err := m.store.PruneAliasRuns(ctx, runRecordAge)
	return err
}

type module struct {
	store    *store.Store
	maxDepth int
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if inv.Command != Name {
		return nil, fmt.Errorf("%w: alias has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if m.store == nil || tx == nil {
		return nil, errors.New("alias: built without a store, or run outside the outbox transaction")
	}
	p := actions.CommandPrefix(inv)
	sub, rest := actions.CutWord(inv.ArgText)
	var text string
	var err error
	switch strings.ToLower(sub) {
	case "add":
		text, err = m.add(ctx, inv, tx, rest)
	case "remove", "rm", "delete":
		text, err = m.remove(ctx, inv, tx, rest)
	case "list":
		text, err = m.list(ctx, inv, tx, rest)
	case "show":
		text, err = m.show(ctx, inv, tx, rest)
	case "":
		text = usage(p)
	default:
		text = fmt.Sprintf("%salias has no %q. %s", p, actions.Clip(sub, MaxName), usage(p))
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

func usage(p string) string {
	return fmt.Sprintf("Usage: %salias add <name> <command…> | remove <name> | list [page] | show <name>", p)
}

func (m *module) add(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	rawName, rawTarget := actions.CutWord(rest)
	name, target, cat, ch, problem, err := prepare(ctx, m.store, tx, inv.Community.ID, p, rawName, rawTarget, m.maxDepth)
	if err != nil || problem != "" {
		return problem, err
	}

	by := inv.Event.User.Name()
	// A savepoint: a failed insert must not abort the outbox transaction,
	// which still has the reply to store.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("alias: unable to begin a savepoint: %w", err)
	}
	err = m.store.AddAlias(ctx, sp, store.Alias{CommunityID: inv.Community.ID, Name: name, Target: target, CreatedBy: by})
	if errors.Is(err, store.ErrConflict) {
		_ = sp.Rollback(ctx)
		// Only a writer that skips the lock (the portal, say) gets here.
		return fmt.Sprintf("Alias %s%s exists already.", p, name), nil
	}
	if err != nil {
		_ = sp.Rollback(ctx)
		return "", fmt.Errorf("alias: unable to add alias %s: %w", name, err)
	}
	if err := sp.Commit(ctx); err != nil {
		return "", fmt.Errorf("alias: unable to release a savepoint: %w", err)
	}
	if err := m.store.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: actor(inv),
		Action: "alias.add", Target: name, Details: map[string]any{"target": target}}); err != nil {
		return "", fmt.Errorf("alias: unable to audit adding %s: %w", name, err)
	}
	actions.CommunityChanged(ctx)
	text := fmt.Sprintf("Alias %s%s added: %s", p, name, display(target, p))
	off, err := m.moduleOff(ctx, inv.Community.ID, cat, ch.module)
	if err != nil {
		return "", err
	}
	if off {
		text += fmt.Sprintf(" (module %s is off here: it answers once the module is on)", ch.module)
	}
	return text, nil
}

// moduleOff reports whether the community has module switched off, by its
// own choice or the module's default.
func (m *module) moduleOff(ctx context.Context, communityID string, cat catalogue, module string) (bool, error) {
	if module == "" {
		return false, nil
	}
	choices, err := m.store.CommunityModules(ctx, communityID)
	if err != nil {
		return false, fmt.Errorf("alias: unable to read the community's modules: %w", err)
	}
	if c, ok := choices[module]; ok {
		return !c.Enabled, nil
	}
	return !cat.on[module], nil
}

func (m *module) remove(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	rawName, extra := actions.CutWord(rest)
	if rawName == "" || extra != "" {
		return fmt.Sprintf("Usage: %salias remove <name>", p), nil
	}
	name, problem := parseName(rawName, p)
	if problem != "" {
		return problem, nil
	}
	// Serialized with adds, so an add that checked this alias's chain
	// cannot commit after it is gone.
	if err := lockAliases(ctx, tx, inv.Community.ID); err != nil {
		return "", err
	}
	existing, err := readAliases(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", err
	}
	err = m.store.RemoveAlias(ctx, tx, inv.Community.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Sprintf("There is no alias %s%s. %salias list shows them.", p, name, p), nil
	}
	if err != nil {
		return "", fmt.Errorf("alias: unable to remove alias %s: %w", name, err)
	}
	var target string
	targets := make(map[string]string, len(existing))
	for _, a := range existing {
		targets[a.Name] = a.Target
		if a.Name == name {
			target = a.Target
		}
	}
	if err := m.store.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: actor(inv),
		Action: "alias.remove", Target: name, Details: map[string]any{"target": target}}); err != nil {
		return "", fmt.Errorf("alias: unable to audit removing %s: %w", name, err)
	}
	actions.CommunityChanged(ctx)

	// Aliases that went through this one stop working: say which.
	entries, err := m.store.Catalogue(ctx)
	if err != nil {
		return "", fmt.Errorf("alias: unable to read the catalogue: %w", err)
	}
	cat := indexCatalogue(entries)
	var broken []string
	for _, a := range existing {
		if a.Name == name {
			continue
		}
		if ch := follow(a.Name, targets, cat); slices.Contains(ch.aliases[1:], name) {
			broken = append(broken, p+a.Name)
		}
	}
	text := fmt.Sprintf("Alias %s%s removed.", p, name)
	if len(broken) > 0 {
		text += fmt.Sprintf(" %s used it and no longer %s.", joinSome(broken, 5), plural(len(broken), "works", "work"))
	}
	return text, nil
}

func (m *module) list(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	page := 1
	if rest != "" {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return fmt.Sprintf("Usage: %salias list [page], for example %salias list 2", p, p), nil
		}
		page = n
	}
	existing, err := readAliases(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", err
	}
	items := make([]string, len(existing))
	for i, a := range existing {
		items[i] = p + a.Name + " → " + actions.Clip(display(a.Target, p), listTargetClip)
	}
	text, _ := actions.Listing{
		Header: fmt.Sprintf("Aliases (%d):", len(existing)),
		Items:  items,
		Empty:  fmt.Sprintf("No aliases yet. %salias add <name> <command…> makes one.", p),
		More:   func(n int) string { return fmt.Sprintf("%salias list %d", p, n) },
	}.Page(page, schemas.TextLimit(inv.Event.Platform))
	return text, nil
}

func (m *module) show(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, rest string) (string, error) {
	p := actions.CommandPrefix(inv)
	rawName, extra := actions.CutWord(rest)
	if rawName == "" || extra != "" {
		return fmt.Sprintf("Usage: %salias show <name>", p), nil
	}
	name, problem := parseName(rawName, p)
	if problem != "" {
		return problem, nil
	}
	existing, err := readAliases(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", err
	}
	targets := make(map[string]string, len(existing))
	var found *store.Alias
	for i, a := range existing {
		targets[a.Name] = a.Target
		if a.Name == name {
			found = &existing[i]
		}
	}
	if found == nil {
		return fmt.Sprintf("There is no alias %s%s. %salias list shows them.", p, name, p), nil
	}
	entries, err := m.store.Catalogue(ctx)
	if err != nil {
		return "", fmt.Errorf("alias: unable to read the catalogue: %w", err)
	}
	cat := indexCatalogue(entries)
	ch := follow(name, targets, cat)

	var b strings.Builder
	fmt.Fprintf(&b, "Alias %s%s: %s · added by %s on %s", p, name, display(found.Target, p),
		found.CreatedBy, found.CreatedAt.In(location(inv.Community.TimeZone)).Format("2006-01-02 15:04 MST"))
	// The router counts runs only where a {count} is filled in.
	counted := false
	for _, a := range ch.aliases {
		counted = counted || usesCount(targets[a])
	}
	if counted {
		fmt.Fprintf(&b, " · ran %d %s", found.Runs, plural(int(found.Runs), "time", "times"))
	} else {
		b.WriteString(" · runs not counted (no {count})")
	}
	why := ch.problem(p, m.maxDepth)
	if why == "" {
		off, err := m.moduleOff(ctx, inv.Community.ID, cat, ch.module)
		if err != nil {
			return "", err
		}
		if off {
			why = "module " + ch.module + " is off here"
		}
	}
	if why != "" {
		b.WriteString(" · does not run: " + why)
	}
	return b.String(), nil
}

// lockAliases serializes the changes to one community's aliases, so two
// adds cannot each pass the loop check and together make a loop.
func lockAliases(ctx context.Context, tx pgx.Tx, communityID string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('alias:' || $1))`, communityID); err != nil {
		return fmt.Errorf("alias: unable to lock the aliases: %w", err)
	}
	return nil
}

// readAliases reads a community's aliases by name through the outbox
// transaction: after lockAliases it sees every change committed before,
// and it holds no second pool connection while the transaction holds one.
func readAliases(ctx context.Context, tx pgx.Tx, communityID string) ([]store.Alias, error) {
	rows, err := tx.Query(ctx, `SELECT community_id::text, name, target, created_by, created_at, runs
		FROM aliases WHERE community_id = $1 ORDER BY name`, communityID)
	if err != nil {
		return nil, fmt.Errorf("alias: unable to read aliases: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Alias, error) {
		var a store.Alias
		err := r.Scan(&a.CommunityID, &a.Name, &a.Target, &a.CreatedBy, &a.CreatedAt, &a.Runs)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("alias: unable to read aliases: %w", err)
	}
	return list, nil
}

func actor(inv *schemas.Invocation) string {
	id := inv.Event.User.ID
	if id == "" {
		id = inv.Event.User.Login
	}
	return inv.Event.Platform + ":" + id
}

func location(name string) *time.Location {
	if loc, err := time.LoadLocation(name); err == nil && name != "" {
		return loc
	}
	return time.UTC
}

// parseName reads an alias name as a moderator types it ("hug" or "!hug")
// and says what is wrong with a bad one.
func parseName(raw, p string) (string, string) {
	name := raw
	switch {
	case p != externalPrefix && strings.HasPrefix(name, p):
		name = name[len(p):]
	case strings.HasPrefix(name, "!"):
		name = name[1:]
	}
	const rule = "Alias names are 1 to 32 of a-z, 0-9, - and _, starting with a letter"
	switch {
	case name == "":
		return "", rule + "."
	case validName(name):
		return name, ""
	case validName(strings.ToLower(name)):
		return "", fmt.Sprintf("Alias names are lower case: %s, not %s.", strings.ToLower(name), name)
	case utf8.RuneCountInString(name) > MaxName:
		return "", fmt.Sprintf("%s: that name has %d characters.", rule, utf8.RuneCountInString(name))
	case validName("a" + name):
		return "", fmt.Sprintf("An alias name starts with a letter: %s%s would read as chat.", p, name)
	}
	return "", fmt.Sprintf("%s: %q is not one.", rule, actions.Clip(name, MaxName+8))
}

// validName is the router's rule for a command word (a letter first, or
// "!1" would be chat) within the aliases table's [a-z0-9_-]{1,32}.
func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxName || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkText refuses what cannot be a line of chat: broken UTF-8, line
// breaks and control characters. Everything else (quotes, braces, RTL
// marks, emoji) is kept byte for byte.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "That command is not valid UTF-8 text."
	}
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029':
			return "An alias is one line: the command may not contain line breaks."
		case r != '\t' && unicode.IsControl(r):
			return fmt.Sprintf("The command may not contain control characters (it has U+%04X).", r)
		}
	}
	return ""
}

// normalize turns what a moderator typed as the target ("!so {1}", "so
// {1}", "#weather {1|berlin}") into the form the router expands: no
// prefix for built-in commands, '#' for external ones, the command word in
// lower case and the rest exactly as typed.
func normalize(raw, p string) (string, string) {
	t := strings.TrimSpace(raw)
	switch {
	case p != externalPrefix && strings.HasPrefix(t, p):
		t = t[len(p):]
	case strings.HasPrefix(t, "!"):
		t = t[1:]
	}
	cmd, ok := parseTarget(t)
	if !ok {
		return "", fmt.Sprintf("The command must start with a command's name, like %squote {1|random} or #weather {1|berlin}.", p)
	}
	out := cmd.Name
	if cmd.Prefix == externalPrefix {
		out = externalPrefix + out
	}
	if cmd.ArgText != "" {
		out += " " + cmd.ArgText
	}
	return out, ""
}

// display shows a stored target as users type it.
func display(target, p string) string {
	if strings.HasPrefix(target, externalPrefix) {
		return target
	}
	return p + target
}

// usesCount reports whether a target fills in {count} (or {count|…}), the
// way router.Expand reads variables.
func usesCount(target string) bool {
	for i := 0; i < len(target); {
		open := strings.IndexByte(target[i:], '{')
		if open < 0 {
			return false
		}
		i += open
		end := strings.IndexByte(target[i:], '}')
		if end < 0 {
			return false
		}
		name, _, _ := strings.Cut(target[i+1:i+end], "|")
		if name == "count" {
			return true
		}
		i += end + 1
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// joinSome lists at most n names: "!a, !b and 3 more".
func joinSome(names []string, n int) string {
	if len(names) > n {
		return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
