// Package labels is the labels module: moderators tag chat users with labels
// (`!label add @bob memories`) that other modules check through the labels
// the router puts into every invocation (memories lets a user add quotes,
// event-autoapprove lets their calendar events skip approval, and so on).
//
// Labels belong to a community, a platform and a user. A user is named by
// login on Twitch and the console (`@bob` or `bob`), and by id in Discord
// (`<@123>`, `<@!123>`) and Slack (`<@U123>`, `<@U123|bob>`) mentions. Logins
// and ids are stored in lower case, the way the router looks them up: the
// lower-cased login of the event's user, or its id when it has no login.
package labels

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.labels.
const Name = "labels"

// MaxPerUser is the most labels one user holds in one community.
const MaxPerUser = 5

// MaxLabelLength is the longest label, in characters.
const MaxLabelLength = 32

// Config builds the labels module.
type Config struct {
	Store *store.Store
}

// Well-known labels other modules check; any other label is allowed too.
const wellKnown = "memories (may add quotes and bookmarks), event-autoapprove (calendar events skip approval), inventory (may manage the inventory)"

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "Labels on chat users that other modules check",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{
			{Name: "label", Usage: "label add @user <label> | label remove @user <label> | label who <label> [page]",
				Description: "Gives or takes a user's label (at most 5 each); well-known: " + wellKnown + "; any other label works too",
				Permission:  string(schemas.RoleModerator)},
			{Name: "labels", Usage: "labels [@user] [page]",
				Description: "Shows a user's labels, or yours",
				Permission:  schemas.PermissionEveryone},
		},
	}
}

// New builds the labels module.
func New(cfg Config) actions.Module {
	m := &module{store: cfg.Store}
	return actions.Module{Manifest: Manifest(), Handle: m.handle}
}

type module struct {
	store *store.Store
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if m.store == nil {
		return nil, errors.New("labels: built without a store")
	}
	if tx == nil {
		return nil, errors.New("labels: no transaction (the manifest must say Writes)")
	}
	var text string
	var err error
	switch inv.Command {
	case "label":
		text, err = m.label(ctx, inv, tx)
	case "labels":
		text, err = m.list(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: labels has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

func usage(inv *schemas.Invocation) string {
	p := actions.CommandPrefix(inv)
	return fmt.Sprintf("Usage: %[1]slabel add @user <label>, %[1]slabel remove @user <label>, %[1]slabel who <label> [page]. "+
		"A label is 1 to %[2]d of a-z, 0-9, '_' or '-', at most %[3]d per user; well-known: %[4]s.",
		p, MaxLabelLength, MaxPerUser, wellKnown)
}

// label serves the moderators' `!label add|remove|who`.
func (m *module) label(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	if len(inv.Args) == 0 {
		return usage(inv), nil
	}
	sub := strings.ToLower(inv.Args[0])
	switch sub {
	case "add", "remove":
	case "who":
		return m.who(ctx, inv, tx)
	default:
		return fmt.Sprintf("There is no %slabel %s. %s", actions.CommandPrefix(inv), shown(inv.Args[0]), usage(inv)), nil
	}
	one := fmt.Sprintf("%slabel %s @user <label> (for example %slabel %s @bob memories)", actions.CommandPrefix(inv), sub, actions.CommandPrefix(inv), sub)
	switch {
	case len(inv.Args) < 3:
		return "Usage: " + one + ".", nil
	case len(inv.Args) > 3:
		return "One label at a time, and a label is one word: " + one + ".", nil
	}
	who, problem := parseUser(inv.Args[1])
	if problem != "" {
		return problem, nil
	}
	label, problem := parseLabel(inv.Args[2])
	if problem != "" {
		return problem, nil
	}
	if sub == "add" {
		return m.add(ctx, inv, tx, who, label)
	}
	return m.remove(ctx, inv, tx, who, label)
}

func actor(inv *schemas.Invocation) string {
	return inv.Event.Platform + "/" + ownLogin(inv)
}

func (m *module) add(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, who user, label string) (string, error) {
	platform := inv.Event.Platform
	have, err := userLabels(ctx, tx, inv.Community.ID, platform, who.login)
	if err != nil {
		return "", err
	}
	if contains(have, label) {
		return fmt.Sprintf("%s has the label %s already.", who.shown, label), nil
	}
	// A savepoint, so that a unique violation (the same label added by a
	// concurrent invocation) leaves the outbox transaction usable.
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("labels: unable to start a savepoint: %w", err)
	}
	err = m.store.AddLabel(ctx, sp, inv.Community.ID, platform, who.login, label, actor(inv), MaxPerUser)
	switch {
	case errors.Is(err, store.ErrLimit), errors.Is(err, store.ErrConflict):
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return "", fmt.Errorf("labels: unable to roll back a savepoint: %w", rbErr)
		}
		have, rerr := userLabels(ctx, tx, inv.Community.ID, platform, who.login)
		if rerr != nil {
			return "", rerr
		}
		if errors.Is(err, store.ErrConflict) || contains(have, label) {
			return fmt.Sprintf("%s has the label %s already.", who.shown, label), nil
		}
		return fmt.Sprintf("%s has %d labels already (the most): remove one first. Labels: %s.",
			who.shown, len(have), strings.Join(have, ", ")), nil
	case err != nil:
		_ = sp.Rollback(ctx)
		return "", fmt.Errorf("labels: unable to add label: %w", err)
	}
	if err := sp.Commit(ctx); err != nil {
		return "", fmt.Errorf("labels: unable to release a savepoint: %w", err)
	}
	if err := m.audit(ctx, tx, inv, "label.add", who, label); err != nil {
		return "", err
	}
	actions.CommunityChanged(ctx)
	have, err = userLabels(ctx, tx, inv.Community.ID, platform, who.login)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s now has the label %s. Labels: %s (%d of %d).",
		who.shown, label, strings.Join(have, ", "), len(have), MaxPerUser), nil
}

func (m *module) remove(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, who user, label string) (string, error) {
	platform := inv.Event.Platform
	err := m.store.RemoveLabel(ctx, tx, inv.Community.ID, platform, who.login, label)
	if errors.Is(err, store.ErrNotFound) {
		have, rerr := userLabels(ctx, tx, inv.Community.ID, platform, who.login)
		if rerr != nil {
			return "", rerr
		}
		if len(have) == 0 {
			return fmt.Sprintf("%s has no label %s: they have no labels here.", who.shown, label), nil
		}
		return fmt.Sprintf("%s has no label %s. Labels: %s.", who.shown, label, strings.Join(have, ", ")), nil
	}
	if err != nil {
		return "", fmt.Errorf("labels: unable to remove label: %w", err)
	}
	if err := m.audit(ctx, tx, inv, "label.remove", who, label); err != nil {
		return "", err
	}
	actions.CommunityChanged(ctx)
	return fmt.Sprintf("%s no longer has the label %s.", who.shown, label), nil
}

func (m *module) audit(ctx context.Context, tx pgx.Tx, inv *schemas.Invocation, action string, who user, label string) error {
	if err := m.store.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: actor(inv), Action: action,
		Target: inv.Event.Platform + "/" + who.login, Details: map[string]any{"label": label}}); err != nil {
		return fmt.Errorf("labels: unable to record %s: %w", action, err)
	}
	return nil
}

// who lists the users with a label: `!label who memories [page]`.
func (m *module) who(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	p := actions.CommandPrefix(inv)
	one := fmt.Sprintf("%slabel who <label> [page] (for example %slabel who memories)", p, p)
	args := inv.Args[1:]
	page := 1
	if len(args) == 2 {
		n, ok := parsePage(args[1])
		if !ok {
			return fmt.Sprintf("%s is not a page number. Usage: %s.", shown(args[1]), one), nil
		}
		page, args = n, args[:1]
	}
	if len(args) != 1 {
		return "Usage: " + one + ".", nil
	}
	label, problem := parseLabel(args[0])
	if problem != "" {
		return problem, nil
	}
	holders, err := labelHolders(ctx, tx, inv.Community.ID, inv.Event.Platform, label)
	if err != nil {
		return "", err
	}
	text, _ := actions.Listing{
		Header: fmt.Sprintf("With the label %s:", label),
		Items:  holders,
		Empty:  fmt.Sprintf("Nobody has the label %s here.", label),
		More:   func(n int) string { return fmt.Sprintf("%slabel who %s %d", p, label, n) },
	}.Page(page, schemas.TextLimit(inv.Event.Platform))
	return text, nil
}

// list serves `!labels [@user] [page]`.
func (m *module) list(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	p := actions.CommandPrefix(inv)
	args := inv.Args
	page := 1
	// The page comes last; a lone number is a page of your own labels (a
	// user whose login is a number is named "@123").
	if n := len(args); n > 0 {
		if num, ok := parsePage(args[n-1]); ok {
			page, args = num, args[:n-1]
		} else if n == 2 {
			return fmt.Sprintf("%s is not a page number. Usage: %slabels [@user] [page].", shown(args[1]), p), nil
		}
	}
	if len(args) > 1 {
		return fmt.Sprintf("Usage: %slabels [@user] [page] (for example %slabels @bob).", p, p), nil
	}
	var l actions.Listing
	var login string
	if len(args) == 0 {
		login = ownLogin(inv)
		if login == "" {
			return "I cannot tell who you are on this platform, so I cannot look up your labels.", nil
		}
		l = actions.Listing{Header: "Your labels:", Empty: "You have no labels here.",
			More: func(n int) string { return fmt.Sprintf("%slabels %d", p, n) }}
	} else {
		who, problem := parseUser(args[0])
		if problem != "" {
			return problem, nil
		}
		login = who.login
		l = actions.Listing{Header: who.shown + "'s labels:", Empty: who.shown + " has no labels here.",
			More: func(n int) string { return fmt.Sprintf("%slabels %s %d", p, who.typed, n) }}
	}
	have, err := userLabels(ctx, tx, inv.Community.ID, inv.Event.Platform, login)
	if err != nil {
		return "", err
	}
	l.Items = have
	text, _ := l.Page(page, schemas.TextLimit(inv.Event.Platform))
	return text, nil
}

// ownLogin is the invoker as the router looks their labels up.
func ownLogin(inv *schemas.Invocation) string {
	login := inv.Event.User.Login
	if login == "" {
		login = inv.Event.User.ID
	}
	return strings.ToLower(login)
}

// user is a chat user named in a command.
type user struct {
	login string // as stored: lower case
	shown string // as replies name them
	typed string // as a command names them again
}

var (
	// Discord user mentions: <@123>, and <@!123> for a nickname.
	discordMention = regexp.MustCompile(`^<@!?([0-9]{1,25})>$`)
	// Slack user mentions: <@U123>, <@W123> (enterprise), with an optional |name.
	slackMention = regexp.MustCompile(`^<@([UW][A-Z0-9]{1,24})(?:\|[^<>]{0,80})?>$`)
	// Logins: Twitch [a-z0-9_], console [A-Za-z0-9_-], Discord usernames
	// also use '.'; 64 is well above any of them.
	loginRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	labelRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// parseUser reads "@name", "name" or a Discord or Slack mention; problem is
// the reply when it names nobody.
func parseUser(arg string) (u user, problem string) {
	if m := discordMention.FindStringSubmatch(arg); m != nil {
		return user{login: m[1], shown: "<@" + m[1] + ">", typed: "<@" + m[1] + ">"}, ""
	}
	if m := slackMention.FindStringSubmatch(arg); m != nil {
		return user{login: strings.ToLower(m[1]), shown: "<@" + m[1] + ">", typed: "<@" + m[1] + ">"}, ""
	}
	name := strings.TrimPrefix(arg, "@")
	if !loginRe.MatchString(name) {
		return user{}, fmt.Sprintf("%s is not a user: name one as @login (letters, digits, '_', '-' or '.', up to 64), or mention them on Discord or Slack.", shown(arg))
	}
	login := strings.ToLower(name)
	return user{login: login, shown: login, typed: "@" + login}, ""
}

// parseLabel checks a label and lower-cases it; problem is the reply when
// it is not one.
func parseLabel(arg string) (label, problem string) {
	rule := fmt.Sprintf("a label is 1 to %d of a-z, 0-9, '_' or '-' (like memories or event-autoapprove)", MaxLabelLength)
	if !labelRe.MatchString(arg) {
		return "", fmt.Sprintf("%s is not a label: %s.", shown(arg), rule)
	}
	if n := len(arg); n > MaxLabelLength {
		return "", fmt.Sprintf("That label is %d characters long: %s.", n, rule)
	}
	return strings.ToLower(arg), ""
}

func parsePage(s string) (int, bool) {
	if len(s) == 0 || len(s) > 6 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// shownMax bounds what a refusal repeats of the user's text.
const shownMax = 40

// shown quotes user text for a refusal: clipped, with control and
// direction characters escaped so they cannot garble the reply.
func shown(s string) string {
	if utf8.RuneCountInString(s) > shownMax {
		s = string([]rune(s)[:shownMax-1]) + "…"
	}
	return strconv.Quote(s)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// userLabels reads a user's labels inside the invocation's transaction, so
// a reply after a change shows the change.
func userLabels(ctx context.Context, q store.Querier, communityID, platform, login string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT label FROM labels WHERE community_id = $1 AND platform = $2 AND user_login = $3 ORDER BY label`,
		communityID, platform, strings.ToLower(login))
	if err != nil {
		return nil, fmt.Errorf("labels: unable to read labels: %w", err)
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("labels: unable to read labels: %w", err)
	}
	return labels, nil
}

// labelHolders lists who has a label in a community: users of the asking
// platform by login first, then those of other platforms marked with theirs.
func labelHolders(ctx context.Context, q store.Querier, communityID, platform, label string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT platform, user_login FROM labels WHERE community_id = $1 AND label = $2
		ORDER BY platform <> $3, platform, user_login`, communityID, label, platform)
	if err != nil {
		return nil, fmt.Errorf("labels: unable to list label holders: %w", err)
	}
	holders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var p, login string
		if err := r.Scan(&p, &login); err != nil {
			return "", err
		}
		if p != platform {
			return login + " (" + p + ")", nil
		}
		return login, nil
	})
	if err != nil {
		return nil, fmt.Errorf("labels: unable to list label holders: %w", err)
	}
	return holders, nil
}
