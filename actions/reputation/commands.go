package reputation

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// onEvent moves the score of the event's subject by the community's weight
// for its kind. Its source is the event id, so the same event delivered
// twice (past every duplicate window) still moves it once.
func (m *module) onEvent(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) error {
	who, ok := subjectOf(inv)
	if !ok {
		return nil
	}
	amount, moves := parseWeights(inv.Settings).requested(&inv.Event)
	if !moves || amount == 0 {
		return nil
	}
	who, err := settle(ctx, tx, inv.Community.ID, who)
	if err != nil {
		return err
	}
	now := m.clock.Now()
	if err := remember(ctx, tx, inv.Community.ID, who, now); err != nil {
		return err
	}
	if inv.Event.Kind == schemas.KindChat {
		return creditChat(ctx, tx, inv.Community.ID, who, amount, now, m.foldEvery, m.foldAfter)
	}
	note := ""
	if d := inv.Event.Data; d != nil {
		switch inv.Event.Kind {
		case schemas.KindSubscription:
			note = "tier " + d.Tier
		case schemas.KindGift:
			note = strconv.Itoa(max(d.Count, 1)) + " subs"
		case schemas.KindCheer:
			note = strconv.Itoa(d.Bits) + " bits"
		case schemas.KindRaid:
			note = strconv.Itoa(d.Viewers) + " viewers"
		case schemas.KindTimeout, schemas.KindBan:
			note = actions.Clip(d.Reason, MaxReason)
		}
	}
	_, err = record(ctx, tx, entry{community: inv.Community.ID, who: who, requested: amount,
		reason: string(inv.Event.Kind), note: note, source: inv.Event.ID})
	return err
}

func usage(inv *schemas.Invocation) string {
	return fmt.Sprintf("Usage: %[1]srep, %[1]srep @user, %[1]stop [n]; moderators: %[1]srep adjust @user <±n> <reason>.", actions.CommandPrefix(inv))
}

// rep serves `!rep`, `!rep @user` and `!rep adjust …`.
func (m *module) rep(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	if len(inv.Args) > 0 && strings.EqualFold(inv.Args[0], "adjust") {
		return m.adjust(ctx, inv, tx)
	}
	switch len(inv.Args) {
	case 0:
		self, ok := subjectOf(inv)
		if !ok {
			return "I can't tell who you are on this platform.", nil
		}
		self, err := settle(ctx, tx, inv.Community.ID, self)
		if err != nil {
			return "", err
		}
		s, found, err := standingOf(ctx, tx, inv.Community.ID, self.subject)
		if err != nil {
			return "", err
		}
		if !found {
			return fmt.Sprintf("%s: %d (%s). Nothing recorded yet; chatting, following and subscribing raise it.",
				actions.Clip(self.display, 25), DefaultScore, Tier(DefaultScore)), nil
		}
		return describe(actions.Clip(inv.Event.User.Name(), 25), s), nil
	case 1:
		who, problem := parseTarget(inv.Args[0])
		if problem != "" {
			return problem + " " + usage(inv), nil
		}
		a, found, err := findAccount(ctx, tx, inv.Community.ID, inv.Event.Platform, who.name)
		if err != nil {
			return "", err
		}
		if !found {
			return fmt.Sprintf("I have no record of %s here yet; everyone starts at %d.", who.shown, DefaultScore), nil
		}
		if a, err = settle(ctx, tx, inv.Community.ID, a); err != nil {
			return "", err
		}
		s, found, err := standingOf(ctx, tx, inv.Community.ID, a.subject)
		if err != nil {
			return "", err
		}
		if !found {
			return fmt.Sprintf("I have no record of %s here yet; everyone starts at %d.", who.shown, DefaultScore), nil
		}
		return describe(actions.Clip(s.display, 25), s), nil
	}
	return usage(inv), nil
}

func describe(name string, s standing) string {
	return fmt.Sprintf("%s: %d (%s), #%d of %d here.", name, s.score, Tier(s.score), s.rank, s.of)
}

// top serves `!top [n]`.
func (m *module) top(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	n := DefaultTop
	switch len(inv.Args) {
	case 0:
	case 1:
		v, err := strconv.Atoi(inv.Args[0])
		if err != nil || v < 1 {
			return fmt.Sprintf("%s is not a number of places. Usage: %stop [n], n from 1 to %d.", quoted(inv.Args[0]), actions.CommandPrefix(inv), MaxTop), nil
		}
		n = min(v, MaxTop)
	default:
		return fmt.Sprintf("Usage: %stop [n], n from 1 to %d.", actions.CommandPrefix(inv), MaxTop), nil
	}
	ls, err := leaders(ctx, tx, inv.Community.ID, n)
	if err != nil {
		return "", err
	}
	if len(ls) == 0 {
		return "Nobody has a reputation here yet.", nil
	}
	// At most 10 names of at most 25 characters: well inside Twitch's 500.
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%d. %s %d", i+1, actions.Clip(l.display, 25), l.score)
	}
	return "Top reputation: " + strings.Join(parts, " · "), nil
}

// adjust serves `!rep adjust @user <±n> <reason>`: moderators and up move a
// score by hand, recorded in the ledger under the moderator's name and in
// the audit log.
func (m *module) adjust(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	if !actions.IsModerator(inv) {
		return "Only moderators can adjust reputation.", nil
	}
	_, rest := actions.CutWord(inv.ArgText) // "adjust"
	a, problem := parseAdjust(rest)
	if problem == missingParts {
		return fmt.Sprintf("Usage: %srep adjust @user <±n> <reason> (for example %[1]srep adjust @bob +25 ran the raffle).", actions.CommandPrefix(inv)), nil
	}
	if problem != "" {
		return problem, nil
	}
	who, found, err := findAccount(ctx, tx, inv.Community.ID, inv.Event.Platform, a.who.name)
	if err != nil {
		return "", err
	}
	if !found {
		return fmt.Sprintf("I have no record of %s here yet; they need to chat first.", a.who.shown), nil
	}
	if who, err = settle(ctx, tx, inv.Community.ID, who); err != nil {
		return "", err
	}
	if self, ok := subjectOf(inv); ok && self.subject == who.subject {
		return "You can't adjust your own reputation.", nil
	}
	actor := inv.Event.Platform + "/" + strings.ToLower(inv.Event.User.Login)
	if inv.Event.User.Login == "" {
		actor = inv.Event.Platform + "/" + inv.Event.User.ID
	}
	who.display = "" // keep the name the subject's own activity set
	r, err := record(ctx, tx, entry{community: inv.Community.ID, who: who, requested: int64(a.points) * 100,
		reason: "adjust", note: a.reason, source: inv.ID, actor: actor})
	if err != nil {
		return "", err
	}
	if err := m.st.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: actor, Action: "reputation.adjust",
		Target: who.subject, Details: map[string]any{"login": who.login, "platform": who.platform, "points": a.points,
			"applied": float64(r.applied) / 100, "reason": a.reason, "before": Points(r.before), "after": Points(r.after)}}); err != nil {
		return "", fmt.Errorf("reputation: unable to audit the adjustment: %w", err)
	}
	before, after := Points(r.before), Points(r.after)
	text := fmt.Sprintf("%s's reputation: %d → %d (%+d: %s).", a.who.shown, before, after, a.points, a.reason)
	if after-before != a.points {
		text = fmt.Sprintf("%s's reputation: %d → %d (%+d asked; scores run from %d to %d: %s).", a.who.shown, before, after, a.points, MinScore, MaxScore, a.reason)
	}
	return text, nil
}
