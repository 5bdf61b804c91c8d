// Package identity is the identity module: one person behind accounts on
// several platforms. `!link <platform> <account>` sends a one-time code
// privately to that account on the other platform (a whisper, a DM, an
// ephemeral message); `!verify <code>`, typed by the account that asked,
// links the two. `!unlink <platform>` and `!whoami` manage and show the
// links. The router resolves the person of every invocation (wb.control.
// identity tells it when links change), so modules that keep things per
// person — reputation, labels — see one person from every linked account.
//
// Persons are global: the same human is the same person in every
// community. A code is kept only as a hash, is good for CodeTTL and
// MaxAttempts wrong guesses, and a new one waits ResendAfter.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.identity.
const Name = "identity"

// Link codes, as the reference sets them.
const (
	CodeLength  = 6
	CodeTTL     = 10 * time.Minute
	MaxAttempts = 5
	ResendAfter = 60 * time.Second
)

// DefaultLookupTimeout bounds each account lookup: the handler runs inside
// the outbox transaction, which should not stay open for long.
const DefaultLookupTimeout = 3 * time.Second

// Config builds the identity module.
type Config struct {
	Store *store.Store
	// NATS carries the account lookups (wb.api.<platform>.*) when
	// Requester is nil.
	NATS *natsx.Conn
	// Requester, when set, carries the lookups instead of NATS (tests).
	Requester actions.Requester
	// LookupTimeout bounds one lookup; default DefaultLookupTimeout.
	LookupTimeout time.Duration
	// Clock dates codes; nil is the wall clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "One person across Twitch, Discord and Slack: link accounts with a code sent privately",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{
			{Name: "link", Usage: "link <twitch|discord|slack> <account>",
				Description: "Sends a one-time code privately to your account on another platform",
				Permission:  schemas.PermissionEveryone},
			{Name: "verify", Usage: "verify <code>", Description: "Links the account you sent a code to",
				Permission: schemas.PermissionEveryone},
			{Name: "unlink", Usage: "unlink <twitch|discord|slack>", Description: "Unlinks your account on a platform",
				Permission: schemas.PermissionEveryone},
			{Name: "whoami", Usage: "whoami", Description: "Shows your accounts linked across platforms",
				Permission: schemas.PermissionEveryone},
		},
	}
}

// New builds the identity module.
func New(cfg Config) actions.Module {
	m := &module{st: cfg.Store, requester: cfg.Requester, lookupTimeout: cfg.LookupTimeout, clock: cfg.Clock, log: cfg.Logger}
	if m.requester == nil && cfg.NATS != nil && cfg.NATS.NC != nil {
		m.requester = cfg.NATS.NC
	}
	if m.lookupTimeout <= 0 {
		m.lookupTimeout = DefaultLookupTimeout
	}
	if m.clock == nil {
		m.clock = clock.Real{}
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	return actions.Module{Manifest: Manifest(), Handle: m.handle, Housekeep: m.housekeep}
}

type module struct {
	st            *store.Store
	requester     actions.Requester
	lookupTimeout time.Duration
	clock         clock.Clock
	log           *slog.Logger
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if m.st == nil {
		return nil, errors.New("identity: built without a store")
	}
	if tx == nil {
		return nil, errors.New("identity: no transaction (the manifest must say Writes)")
	}
	me, ok := requesterOf(inv)
	if !ok {
		return reply(inv, "I can't tell who you are on this platform."), nil
	}
	var text string
	var err error
	switch inv.Command {
	case "link":
		text, err = m.link(ctx, inv, tx, me)
	case "verify":
		text, err = m.verify(ctx, inv, tx, me)
	case "unlink":
		text, err = m.unlink(ctx, inv, tx, me)
	case "whoami":
		text, err = m.whoami(ctx, inv, tx, me)
	default:
		return nil, fmt.Errorf("%w: identity has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return reply(inv, text), nil
}

func reply(inv *schemas.Invocation, text string) *schemas.Result {
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}
}

// housekeep drops codes past their time.
func (m *module) housekeep(ctx context.Context) error {
	if _, err := m.st.Pool().Exec(ctx, `DELETE FROM identity_link_codes WHERE expires_at < $1`, m.clock.Now()); err != nil {
		return fmt.Errorf("identity: unable to prune expired codes: %w", err)
	}
	return nil
}

// account is one platform account.
type account struct {
	platform string
	userID   string
	login    string
	display  string
}

func (a account) name() string {
	if a.display != "" {
		return a.display
	}
	return a.login
}

// requesterOf is the account that typed the command.
func requesterOf(inv *schemas.Invocation) (account, bool) {
	u := inv.Event.User
	id := u.ID
	if id == "" {
		id = u.Login
	}
	if id == "" {
		return account{}, false
	}
	login := u.Login
	if login == "" {
		login = id
	}
	return account{platform: inv.Event.Platform, userID: id, login: login, display: u.DisplayName}, true
}

// linkable are the platforms an account can be linked on: those that can
// deliver a code privately.
var linkable = []string{schemas.PlatformTwitch, schemas.PlatformDiscord, schemas.PlatformSlack}

// platformArg reads a platform name as typed.
func platformArg(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range linkable {
		if s == p {
			return p, true
		}
	}
	return "", false
}

// platformName is how replies name a platform.
func platformName(p string) string {
	switch p {
	case schemas.PlatformTwitch:
		return "Twitch"
	case schemas.PlatformDiscord:
		return "Discord"
	case schemas.PlatformSlack:
		return "Slack"
	case schemas.PlatformConsole:
		return "the console"
	}
	return p
}
