// Package inventory is the inventory module: a community keeps track of its
// shared things (`!inv add mic 3 audio`), lends them out
// (`!inv checkout mic @bob`) and gets them back (`!inv checkin mic @bob`),
// with a history of who did what.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.inventory.
const Name = "inventory"

// Command is the module's one command; subcommands follow it.
const Command = "inv"

// WriterLabel lets a user who is not a moderator change the inventory.
const WriterLabel = "inventory"

// historyShown is how many history lines !inv status shows.
const historyShown = 3

// Config builds the inventory module.
type Config struct {
	// Store is the system of record. Every read and write of the module
	// goes through the invocation's transaction, which the worker opens on
	// this store; it is kept here so the module's dependencies are explicit.
	Store *store.Store
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "Shared items: who has the mic, how many cables are left",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{{
			Name:    Command,
			Aliases: []string{"inventory"},
			Usage:   "inv add|remove|checkout|checkin|list|search|status|unlabel …",
			Description: "Tracks shared items. Moderators or users with the inventory label add, remove, " +
				"check out and check in; everyone lists, searches and asks for an item's status",
			// Reading is for everyone; the module checks who may write.
			Permission: schemas.PermissionEveryone,
		}},
	}
}

// New builds the inventory module.
func New(cfg Config) actions.Module {
	m := &module{store: cfg.Store}
	m.subs = m.subcommands()
	return actions.Module{Manifest: Manifest(), Handle: m.handle}
}

type module struct {
	store *store.Store
	subs  map[string]subcommand

	zonesMu sync.Mutex
	zones   map[string]*time.Location
}

// subcommand is one `!inv <sub>`: whether it writes, and its handler.
type subcommand struct {
	writes bool
	// what is how a refusal names the action ("add items").
	what string
	run  func(ctx context.Context, c *call) (string, error)
}

func (m *module) subcommands() map[string]subcommand {
	return map[string]subcommand{
		"add":      {writes: true, what: "add items", run: m.add},
		"remove":   {writes: true, what: "remove items", run: m.remove},
		"checkout": {writes: true, what: "check items out", run: m.checkout},
		"checkin":  {writes: true, what: "check items in", run: m.checkin},
		"unlabel":  {writes: true, what: "change labels", run: m.unlabel},
		"list":     {run: m.list},
		"search":   {run: m.search},
		"status":   {run: m.status},
	}
}

// Other words for subcommands, as people type them.
var subAliases = map[string]string{
	"rm":     "remove",
	"delete": "remove",
	"return": "checkin",
	"ls":     "list",
	"find":   "search",
	"show":   "status",
	"info":   "status",
}

// call is one invocation on its way through a subcommand.
type call struct {
	inv  *schemas.Invocation
	tx   pgx.Tx
	args []string // after the subcommand word
	sub  string
	loc  *time.Location
}

// cmd is the command as the user types it, for usage lines and hints.
func (c *call) cmd() string {
	p := c.inv.Community.Prefix
	if p == "" {
		p = "!"
	}
	return p + Command
}

func (c *call) community() string { return c.inv.Community.ID }

// actor is who did something, as history shows it.
func (c *call) actor() string { return c.inv.Event.User.Name() }

func (c *call) usage() problem {
	return problem("Usage: " + c.cmd() + " " + usages[c.sub])
}

// needQuotes answers arguments that would have been one name had they
// been quoted.
func (c *call) needQuotes(words []string, rest string) error {
	name, err := itemName(strings.Join(words, " "))
	if err != nil {
		return err
	}
	return problemf("Item names with spaces need quotes: %s %s %s%s", c.cmd(), c.sub, quoteArg(name), rest)
}

// needQuotesBeforeUser is needQuotes for arguments that end with a user.
func (c *call) needQuotesBeforeUser(args []string) error {
	name, _, err := user(args[len(args)-1])
	if err != nil {
		return err
	}
	return c.needQuotes(args[:len(args)-1], " @"+name)
}

var usages = map[string]string{
	"add":      `add <item> [qty] [labels…] (quote names with spaces: "xlr cable")`,
	"remove":   "remove <item>",
	"checkout": "checkout <item> @user",
	"checkin":  "checkin <item> [@user]",
	"unlabel":  "unlabel <item> <label…>",
	"list":     "list [available|out] [page]",
	"search":   "search <term> [page]",
	"status":   "status <item> [page]",
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if inv.Command != Command {
		return nil, fmt.Errorf("%w: inventory has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if tx == nil {
		return nil, errors.New("inventory: no transaction: the module's writes must commit with its result")
	}
	c := &call{inv: inv, tx: tx, loc: m.location(inv.Community.TimeZone)}
	text, err := m.dispatch(ctx, c)
	var p problem
	switch {
	case errors.As(err, &p):
		text = string(p)
	case err != nil:
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

func (m *module) dispatch(ctx context.Context, c *call) (string, error) {
	if len(c.inv.Args) == 0 {
		return m.help(c), nil
	}
	word := strings.ToLower(c.inv.Args[0])
	if a, ok := subAliases[word]; ok {
		word = a
	}
	sub, ok := m.subs[word]
	if !ok {
		if word == "help" {
			return m.help(c), nil
		}
		return "", problemf("%s is not something %s does. %s", clipped(c.inv.Args[0], 32), c.cmd(), m.help(c))
	}
	c.sub, c.args = word, c.inv.Args[1:]
	if sub.writes && !canWrite(c.inv) {
		return "", problemf("Only moderators and people with the %s label can %s.", WriterLabel, sub.what)
	}
	return sub.run(ctx, c)
}

func (m *module) help(c *call) string {
	return fmt.Sprintf("Inventory: %[1]s add <item> [qty] [labels…], %[1]s remove <item>, %[1]s checkout <item> @user, "+
		"%[1]s checkin <item> [@user], %[1]s list [available|out], %[1]s search <term>, %[1]s status <item>, "+
		"%[1]s unlabel <item> <label…>.", c.cmd())
}

// canWrite: moderators and above, or whoever carries the writer label.
func canWrite(inv *schemas.Invocation) bool {
	return inv.Event.User.Highest() >= schemas.RoleRank(string(schemas.RoleModerator)) || slices.Contains(inv.Labels, WriterLabel)
}

// location is the community's time zone, for the times status shows.
func (m *module) location(name string) *time.Location {
	m.zonesMu.Lock()
	defer m.zonesMu.Unlock()
	if loc, ok := m.zones[name]; ok {
		return loc
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" {
		loc = time.UTC
	}
	if m.zones == nil {
		m.zones = map[string]*time.Location{}
	}
	m.zones[name] = loc
	return loc
}

// lockNamed checks a name argument and locks that item, answering an
// unknown one.
func (c *call) lockNamed(ctx context.Context, arg string) (*item, error) {
	name, err := itemName(arg)
	if err != nil {
		return nil, err
	}
	it, err := lockItem(ctx, c.tx, c.community(), name)
	if errors.Is(err, errNoItem) {
		return nil, c.unknown(name)
	}
	return it, err
}

func (c *call) unknown(name string) problem {
	return problemf("There is no item called %s. Try %s search %s or %s list.", name, c.cmd(), quoteArg(name), c.cmd())
}

func (m *module) add(ctx context.Context, c *call) (string, error) {
	if len(c.args) == 0 {
		return "", c.usage()
	}
	name, err := itemName(c.args[0])
	if err != nil {
		return "", err
	}
	rest, qty := c.args[1:], 1
	if len(rest) > 0 {
		n, isQty, err := quantity(rest[0])
		if err != nil {
			return "", err
		}
		if isQty {
			qty, rest = n, rest[1:]
		}
	}
	labels, err := labels(rest)
	if err != nil {
		return "", err
	}
	if len(labels) > MaxLabels {
		return "", problemf("An item can have at most %d labels; that is %d.", MaxLabels, len(labels))
	}

	// A concurrent add of the same new name makes the insert do nothing;
	// the item is then there to lock.
	var it *item
	for attempt := 0; it == nil; attempt++ {
		it, err = lockItem(ctx, c.tx, c.community(), name)
		if err == nil {
			break
		}
		if !errors.Is(err, errNoItem) {
			return "", err
		}
		if attempt == 2 {
			return "", fmt.Errorf("inventory: unable to add item: it keeps appearing and disappearing")
		}
		id, created, err := createItem(ctx, c.tx, c.community(), name, qty, c.actor())
		if err != nil {
			return "", err
		}
		if !created {
			continue
		}
		it = &item{ID: id, Name: name, Quantity: qty, Labels: sorted(labels)}
		if err := addLabels(ctx, c.tx, c.community(), id, labels); err != nil {
			return "", err
		}
		if err := record(ctx, c.tx, c.community(), it, "add", qty, c.actor(), "", c.inv.ID); err != nil {
			return "", err
		}
		return "Added " + describe(it) + ".", nil
	}

	var added []string
	for _, l := range labels {
		if !slices.Contains(it.Labels, l) {
			added = append(added, l)
		}
	}
	if len(it.Labels)+len(added) > MaxLabels {
		// The new labels are counted, not listed: with the old ones listed
		// too, the reply could outgrow a Twitch message.
		return "", problemf("%s has %d %s (%s); %d more would make %d, and an item can have at most %d. "+
			"Drop one first: %s unlabel %s <label>.", it.Name, len(it.Labels), plural(len(it.Labels), "label", "labels"),
			strings.Join(it.Labels, ", "), len(added), len(it.Labels)+len(added), MaxLabels, c.cmd(), quoteArg(it.Name))
	}
	if it.Quantity+qty > MaxQuantity {
		return "", problemf("%s has %d; adding %d would pass the limit of 100,000 per item.", it.Name, it.Quantity, qty)
	}
	if err := addQuantity(ctx, c.tx, it.ID, qty); err != nil {
		return "", err
	}
	if err := addLabels(ctx, c.tx, c.community(), it.ID, added); err != nil {
		return "", err
	}
	if err := record(ctx, c.tx, c.community(), it, "add", qty, c.actor(), "", c.inv.ID); err != nil {
		return "", err
	}
	it.Quantity += qty
	it.Labels = sorted(append(it.Labels, added...))
	return fmt.Sprintf("%s was already there: added %d, now %s.", it.Name, qty, describe(it)), nil
}

func (m *module) remove(ctx context.Context, c *call) (string, error) {
	switch {
	case len(c.args) == 0:
		return "", c.usage()
	case len(c.args) > 1:
		return "", c.needQuotes(c.args, "")
	}
	it, err := c.lockNamed(ctx, c.args[0])
	if err != nil {
		return "", err
	}
	if it.Out > 0 {
		return "", problemf("Can't remove %s: %d of %d %s checked out; check them in first (%s status %s shows who has them).",
			it.Name, it.Out, it.Quantity, plural(it.Out, "is", "are"), c.cmd(), quoteArg(it.Name))
	}
	if err := record(ctx, c.tx, c.community(), it, "remove", it.Quantity, c.actor(), "", c.inv.ID); err != nil {
		return "", err
	}
	if err := deleteItem(ctx, c.tx, it.ID); err != nil {
		return "", err
	}
	return fmt.Sprintf("Removed %s (%d %s).", it.Name, it.Quantity, plural(it.Quantity, "unit", "units")), nil
}

func (m *module) checkout(ctx context.Context, c *call) (string, error) {
	switch {
	case len(c.args) < 2:
		return "", c.usage()
	case len(c.args) > 2:
		if isMention(c.args[len(c.args)-1]) {
			return "", c.needQuotesBeforeUser(c.args)
		}
		return "", c.usage()
	}
	name, err := itemName(c.args[0])
	if err != nil {
		return "", err
	}
	if !isMention(c.args[1]) {
		return "", problemf("Name who gets it with an @: %s checkout %s @user.", c.cmd(), quoteArg(name))
	}
	holderName, holderKey, err := user(c.args[1])
	if err != nil {
		return "", err
	}
	it, err := c.lockNamed(ctx, c.args[0])
	if err != nil {
		return "", err
	}
	if it.available() == 0 {
		return "", problemf("No %s is available: all %d %s checked out (%s status %s shows who has them).",
			it.Name, it.Quantity, plural(it.Quantity, "is", "are"), c.cmd(), quoteArg(it.Name))
	}
	if err := checkout(ctx, c.tx, c.community(), it.ID, holderKey, holderName, c.actor()); err != nil {
		return "", err
	}
	if err := record(ctx, c.tx, c.community(), it, "checkout", 1, c.actor(), holderName, c.inv.ID); err != nil {
		return "", err
	}
	return fmt.Sprintf("Checked out 1 %s to @%s; %d of %d left.", it.Name, holderName, it.available()-1, it.Quantity), nil
}

func (m *module) checkin(ctx context.Context, c *call) (string, error) {
	var holderName, holderKey string
	var err error
	switch {
	case len(c.args) == 0:
		return "", c.usage()
	case len(c.args) == 1:
		u := c.inv.Event.User
		holderName = u.Login
		if holderName == "" {
			holderName = u.ID
		}
		holderKey = strings.ToLower(holderName)
	case len(c.args) == 2 && isMention(c.args[1]):
		holderName, holderKey, err = user(c.args[1])
		if err != nil {
			return "", err
		}
	case len(c.args) == 2:
		name, err := itemName(c.args[0])
		if err != nil {
			return "", err
		}
		return "", problemf("Name the holder with an @: %s checkin %s @user.", c.cmd(), quoteArg(name))
	default:
		if isMention(c.args[len(c.args)-1]) {
			return "", c.needQuotesBeforeUser(c.args)
		}
		return "", c.needQuotes(c.args, "")
	}
	it, err := c.lockNamed(ctx, c.args[0])
	if err != nil {
		return "", err
	}
	returned, found, err := checkin(ctx, c.tx, it.ID, holderKey)
	if err != nil {
		return "", err
	}
	if !found {
		return "", c.notHolding(ctx, it, holderName)
	}
	if err := record(ctx, c.tx, c.community(), it, "checkin", 1, c.actor(), returned, c.inv.ID); err != nil {
		return "", err
	}
	return fmt.Sprintf("@%s checked in 1 %s; %d of %d available.", returned, it.Name, it.available()+1, it.Quantity), nil
}

// notHolding answers a check-in by someone who holds none, naming who does.
func (c *call) notHolding(ctx context.Context, it *item, who string) error {
	if it.Out == 0 {
		return problemf("No %s is checked out.", it.Name)
	}
	hs, err := holders(ctx, c.tx, it.ID)
	if err != nil {
		return err
	}
	// A few names are enough to tell the user they have the wrong holder,
	// and keep the reply inside one Twitch message.
	const shown = 3
	names := make([]string, 0, shown+1)
	for i, h := range hs {
		if i == shown {
			names = append(names, fmt.Sprintf("%d more", len(hs)-shown))
			break
		}
		names = append(names, holderText(h))
	}
	return problemf("@%s holds no %s. It is out to %s.", who, it.Name, strings.Join(names, ", "))
}

func (m *module) unlabel(ctx context.Context, c *call) (string, error) {
	if len(c.args) < 2 {
		return "", c.usage()
	}
	labels, err := labels(c.args[1:])
	if err != nil {
		return "", err
	}
	it, err := c.lockNamed(ctx, c.args[0])
	if err != nil {
		return "", err
	}
	var gone, kept []string
	for _, l := range labels {
		if slices.Contains(it.Labels, l) {
			gone = append(gone, l)
		}
	}
	if len(gone) == 0 {
		if len(it.Labels) == 0 {
			return "", problemf("%s has no labels.", it.Name)
		}
		return "", problemf("%s has no label %s; its labels are %s.", it.Name, strings.Join(labels, ", "), strings.Join(it.Labels, ", "))
	}
	if err := removeLabels(ctx, c.tx, it.ID, gone); err != nil {
		return "", err
	}
	for _, l := range it.Labels {
		if !slices.Contains(gone, l) {
			kept = append(kept, l)
		}
	}
	now := "no labels now"
	if len(kept) > 0 {
		now = "labels now " + strings.Join(kept, ", ")
	}
	return fmt.Sprintf("Took %s off %s; %s.", strings.Join(gone, ", "), it.Name, now), nil
}

func (m *module) list(ctx context.Context, c *call) (string, error) {
	filter, n, haveFilter := filterAll, 1, false
	for i, a := range c.args {
		if p, ok := page(a); ok && i == len(c.args)-1 {
			n = p
			continue
		}
		switch f := strings.ToLower(a); {
		case !haveFilter && (f == filterAvailable || f == filterOut):
			filter, haveFilter = f, true
		default:
			return "", c.usage()
		}
	}
	its, err := items(ctx, c.tx, c.community(), filter, "")
	if err != nil {
		return "", err
	}
	l := actions.Listing{Items: describeAll(its)}
	next := c.cmd() + " list "
	switch filter {
	case filterAvailable:
		l.Header, l.Empty = "Available:", "Nothing is available right now."
		next += filterAvailable + " "
	case filterOut:
		l.Header, l.Empty = "Checked out:", "Nothing is checked out."
		next += filterOut + " "
	default:
		l.Header = "Inventory:"
		l.Empty = fmt.Sprintf("The inventory is empty. Moderators add items with %s add <item> [qty] [labels…].", c.cmd())
	}
	l.More = func(p int) string { return fmt.Sprintf("%s%d", next, p) }
	text, _ := l.Page(n, schemas.TextLimit(c.inv.Event.Platform))
	return text, nil
}

func (m *module) search(ctx context.Context, c *call) (string, error) {
	args, n := c.args, 1
	if len(args) > 1 {
		if p, ok := page(args[len(args)-1]); ok {
			args, n = args[:len(args)-1], p
		}
	}
	if len(args) == 0 {
		return "", c.usage()
	}
	term, err := searchTerm(strings.Join(args, " "))
	if err != nil {
		return "", err
	}
	its, err := items(ctx, c.tx, c.community(), filterAll, term)
	if err != nil {
		return "", err
	}
	l := actions.Listing{
		Header: `Items matching "` + term + `":`,
		Items:  describeAll(its),
		Empty:  `No item's name or label contains "` + term + `".`,
		More:   func(p int) string { return fmt.Sprintf("%s search %s %d", c.cmd(), quoteArg(term), p) },
	}
	text, _ := l.Page(n, schemas.TextLimit(c.inv.Event.Platform))
	return text, nil
}

func (m *module) status(ctx context.Context, c *call) (string, error) {
	n := 1
	switch {
	case len(c.args) == 0:
		return "", c.usage()
	case len(c.args) == 2:
		p, ok := page(c.args[1])
		if !ok {
			return "", c.needQuotes(c.args, "")
		}
		n = p
	case len(c.args) > 2:
		return "", c.needQuotes(c.args, "")
	}
	name, err := itemName(c.args[0])
	if err != nil {
		return "", err
	}
	it, err := readItem(ctx, c.tx, c.community(), name)
	if errors.Is(err, errNoItem) {
		return "", c.unknown(name)
	}
	if err != nil {
		return "", err
	}
	hs, err := holders(ctx, c.tx, it.ID)
	if err != nil {
		return "", err
	}
	hist, err := recent(ctx, c.tx, it.ID, historyShown)
	if err != nil {
		return "", err
	}
	limit := schemas.TextLimit(c.inv.Event.Platform)
	summary := fmt.Sprintf("%s: %d of %d available", it.Name, it.available(), it.Quantity)
	if len(it.Labels) > 0 {
		summary += " [" + strings.Join(it.Labels, ", ") + "]"
	}
	summary += "."
	// The history shrinks, oldest first, to leave room for who has the item.
	for len(hist) > 0 {
		recentText := " Recent: " + c.historyText(hist) + "."
		if runeLen(summary+recentText) <= limit*2/3 {
			summary += recentText
			break
		}
		hist = hist[:len(hist)-1]
	}
	lines := make([]string, len(hs))
	for i, h := range hs {
		lines[i] = holderText(h) + " since " + c.when(h.Since)
	}
	l := actions.Listing{
		Header: summary + " Out:",
		Items:  lines,
		Empty:  summary + " None checked out.",
		More:   func(p int) string { return fmt.Sprintf("%s status %s %d", c.cmd(), quoteArg(it.Name), p) },
	}
	text, _ := l.Page(n, limit)
	return text, nil
}

func (c *call) historyText(hist []event) string {
	parts := make([]string, len(hist))
	for i, e := range hist {
		var what string
		switch e.Action {
		case "add":
			what = fmt.Sprintf("%s added %d", e.Actor, e.Quantity)
		case "remove":
			what = fmt.Sprintf("%s removed %d", e.Actor, e.Quantity)
		case "checkout":
			what = fmt.Sprintf("%s checked out %d to @%s", e.Actor, e.Quantity, e.Holder)
		case "checkin":
			what = fmt.Sprintf("%s checked in %d from @%s", e.Actor, e.Quantity, e.Holder)
		default:
			what = fmt.Sprintf("%s: %s %d", e.Actor, e.Action, e.Quantity)
		}
		parts[i] = c.when(e.At) + " " + what
	}
	return strings.Join(parts, "; ")
}

// when is a time in the community's zone, short enough for chat.
func (c *call) when(t time.Time) string {
	return t.In(c.loc).Format("Jan 2 15:04")
}

func holderText(h holding) string {
	if h.Units == 1 {
		return "@" + h.Name
	}
	return fmt.Sprintf("@%s ×%d", h.Name, h.Units)
}

// describe reads "mic ×3 (1 out) [audio, stage]".
func describe(it *item) string {
	s := fmt.Sprintf("%s ×%d", it.Name, it.Quantity)
	if it.Out > 0 {
		s += fmt.Sprintf(" (%d out)", it.Out)
	}
	if len(it.Labels) > 0 {
		s += " [" + strings.Join(it.Labels, ", ") + "]"
	}
	return s
}

func describeAll(its []item) []string {
	out := make([]string, len(its))
	for i := range its {
		out[i] = describe(&its[i])
	}
	return out
}

func sorted(l []string) []string {
	out := slices.Clone(l)
	slices.Sort(out)
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func runeLen(s string) int { return len([]rune(s)) }

// clipped shortens what the user typed before it is echoed.
func clipped(s string, n int) string {
	r := []rune(s)
	if len(r) <= n && !hasControl(s) {
		return s
	}
	if hasControl(s) {
		return "That"
	}
	return string(r[:n-1]) + "…"
}
