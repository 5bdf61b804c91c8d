// Package reputation is the reputation module: a score from 300 to 850
// (600 to start) per community and person, moved by weighted activity —
// chat (throttled per user by the router), follows, subscriptions by tier,
// gifted subs, cheers, raids — and down by timeouts and bans; moderators
// adjust it by hand (audited). `!rep [@user]` shows a score, `!top [n]` the
// leaders.
//
// Every change is an entry in an append-only ledger (reputation_ledger),
// unique per community, subject and source, so an event delivered twice
// moves a score once. A running total per subject (reputation_scores) is
// updated in the same transaction as each entry, so reading a score or the
// leaders is one indexed read instead of a sum over the ledger; the ledger
// sums to it (tests check that).
//
// Chat credit is not one ledger row per message: each throttled chat adds to
// the subject's pending credit in the transaction that already records the
// invocation (the worker's outbox commits one row per invocation whatever
// the module does), and the pending credit is folded into one ledger entry
// every FoldEvery credits or FoldAfter of age, by the next chat or by the
// hourly housekeeping. Being in that transaction, pending credit is exactly
// once: a crash loses none and a redelivered chat adds none. Scores shown
// include the pending credit. Batching in memory instead would save no
// transaction and would lose up to a batch on every crash or restart.
package reputation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.reputation.
const Name = "reputation"

// Scores, in points.
const (
	MinScore     = 300
	MaxScore     = 850
	DefaultScore = 600
	// MaxAdjust is the largest hand adjustment: the whole range.
	MaxAdjust = MaxScore - MinScore
	// MaxReason bounds an adjustment's reason, so the reply fits a message.
	MaxReason = 200
	// DefaultTop and MaxTop: how many leaders !top shows.
	DefaultTop = 5
	MaxTop     = 10
)

// ChatWindow is how often one user's chat earns credit: the router's
// trigger throttle, so spam earns nothing.
const ChatWindow = time.Minute

// Fold defaults: pending chat credit becomes one ledger entry after this
// many credits or this long.
const (
	DefaultFoldEvery = 10
	DefaultFoldAfter = 10 * time.Minute
)

// Config builds the reputation module.
type Config struct {
	Store *store.Store
	// FoldEvery and FoldAfter bound the pending chat credit of one subject
	// before it is written to the ledger (defaults 10 and 10 minutes).
	FoldEvery int
	FoldAfter time.Duration
	// Clock dates pending chat credit; nil is the wall clock.
	Clock clock.Clock
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	triggers := []schemas.TriggerSpec{{Kind: schemas.KindChat, Per: schemas.ThrottleUser, WindowMS: ChatWindow.Milliseconds()}}
	for _, k := range []schemas.Kind{schemas.KindFollow, schemas.KindSubscription, schemas.KindGift, schemas.KindCheer,
		schemas.KindRaid, schemas.KindTimeout, schemas.KindBan} {
		triggers = append(triggers, schemas.TriggerSpec{Kind: k})
	}
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "Reputation from 300 to 850 earned by chatting, following, subscribing, cheering and raiding",
		DefaultEnabled: true,
		Writes:         true,
		Commands: []schemas.CommandSpec{
			{Name: "rep", Usage: "rep [@user] | rep adjust @user <±n> <reason>",
				Description: "Shows your reputation or a user's; moderators adjust it (audited)",
				Permission:  schemas.PermissionEveryone},
			{Name: "top", Usage: "top [n]", Description: "The community's highest reputations (5, at most 10)",
				Permission: schemas.PermissionEveryone},
		},
		Triggers: triggers,
		Settings: settingsSchema,
	}
}

// New builds the reputation module.
func New(cfg Config) actions.Module {
	m := &module{st: cfg.Store, foldEvery: cfg.FoldEvery, foldAfter: cfg.FoldAfter, clock: cfg.Clock}
	if m.foldEvery <= 0 {
		m.foldEvery = DefaultFoldEvery
	}
	if m.foldAfter <= 0 {
		m.foldAfter = DefaultFoldAfter
	}
	if m.clock == nil {
		m.clock = clock.Real{}
	}
	return actions.Module{Manifest: Manifest(), Handle: m.handle, Housekeep: m.housekeep}
}

type module struct {
	st        *store.Store
	foldEvery int
	foldAfter time.Duration
	clock     clock.Clock
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if m.st == nil {
		return nil, errors.New("reputation: built without a store")
	}
	if tx == nil {
		return nil, errors.New("reputation: no transaction (the manifest must say Writes)")
	}
	if inv.Command == "" {
		// An event trigger: no reply, the score moves quietly.
		return nil, m.onEvent(ctx, inv, tx)
	}
	var text string
	var err error
	switch inv.Command {
	case "rep":
		text, err = m.rep(ctx, inv, tx)
	case "top":
		text, err = m.top(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: reputation has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		return nil, err
	}
	return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name,
		Replies: []schemas.ReplyText{{Text: text}}}, nil
}

// housekeep folds chat credit that waited past FoldAfter (its user stopped
// chatting), so the ledger catches up with what scores show.
func (m *module) housekeep(ctx context.Context) error {
	return foldStale(ctx, m.st, m.clock.Now().Add(-m.foldAfter))
}
