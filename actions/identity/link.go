package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// lockLinks serializes every change to persons until the transaction ends:
// two verifies racing could otherwise make two persons of one, or link one
// account twice. Links are rare; one lock for all costs nothing.
func lockLinks(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('waddlebot.identity'))`); err != nil {
		return fmt.Errorf("identity: unable to lock links: %w", err)
	}
	return nil
}

// personOf is the person an account belongs to, or "".
func personOf(ctx context.Context, tx pgx.Tx, a account) (string, error) {
	return store.PersonIn(ctx, tx, a.platform, a.userID)
}

// accountOn is the person's account on a platform, if any.
func accountOn(ctx context.Context, tx pgx.Tx, person, platform string) (account, bool, error) {
	a := account{platform: platform}
	err := tx.QueryRow(ctx, `SELECT user_id, login, display_name FROM person_accounts WHERE person_id = $1 AND platform = $2`,
		person, platform).Scan(&a.userID, &a.login, &a.display)
	if errors.Is(err, pgx.ErrNoRows) {
		return account{}, false, nil
	}
	if err != nil {
		return account{}, false, fmt.Errorf("identity: unable to read a person's account: %w", err)
	}
	return a, true, nil
}

func linkUsage(inv *schemas.Invocation) string {
	return fmt.Sprintf("Usage: %slink <twitch|discord|slack> <account>, for example %[1]slink discord yourname.", actions.CommandPrefix(inv))
}

// link serves `!link <platform> <account>`.
func (m *module) link(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, me account) (string, error) {
	word, rest := actions.CutWord(inv.ArgText)
	if word == "" {
		return linkUsage(inv), nil
	}
	platform, ok := platformArg(word)
	if !ok {
		return fmt.Sprintf("I can link accounts on Twitch, Discord and Slack, not %q. %s", actions.Clip(word, 25), linkUsage(inv)), nil
	}
	name := strings.TrimSpace(rest)
	if name == "" {
		return linkUsage(inv), nil
	}
	if len([]rune(name)) > maxName {
		return fmt.Sprintf("That name is longer than %d characters. %s", maxName, linkUsage(inv)), nil
	}
	if platform == me.platform {
		return fmt.Sprintf("You're on %s already: link an account on another platform.", platformName(platform)), nil
	}
	now := m.clock.Now()
	var sentAt time.Time
	err := tx.QueryRow(ctx, `SELECT sent_at FROM identity_link_codes WHERE requester_platform = $1 AND requester_user_id = $2`,
		me.platform, me.userID).Scan(&sentAt)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("identity: unable to read a pending code: %w", err)
	}
	if err == nil && now.Sub(sentAt) < ResendAfter {
		ago := int(now.Sub(sentAt).Seconds())
		wait := max(1, int((ResendAfter - now.Sub(sentAt)).Seconds()))
		return fmt.Sprintf("I sent you a code %d %s ago; you can ask for a new one in %d %s.",
			ago, plural(ago, "second", "seconds"), wait, plural(wait, "second", "seconds")), nil
	}

	// The lookup runs before the lock: it waits on a platform, and links
	// elsewhere need not wait with it.
	target, dest, problem, err := m.find(ctx, inv, platform, name)
	if err != nil || problem != "" {
		return problem, err
	}
	if err := lockLinks(ctx, tx); err != nil {
		return "", err
	}
	person, err := personOf(ctx, tx, me)
	if err != nil {
		return "", err
	}
	if person != "" {
		if have, ok, err := accountOn(ctx, tx, person, platform); err != nil {
			return "", err
		} else if ok && have.userID != target.userID {
			return fmt.Sprintf("Your %s account %s is linked already; %sunlink %s first to link another.",
				platformName(platform), actions.Clip(have.name(), 50), actions.CommandPrefix(inv), platform), nil
		}
	}
	owner, err := personOf(ctx, tx, target)
	if err != nil {
		return "", err
	}
	switch {
	case owner != "" && owner == person:
		return fmt.Sprintf("%s on %s is linked to you already.", actions.Clip(target.name(), 50), platformName(platform)), nil
	case owner != "":
		return fmt.Sprintf("%s on %s is linked to someone else already; it can be linked again only once it is unlinked.",
			actions.Clip(target.name(), 50), platformName(platform)), nil
	}

	code, err := newCode()
	if err != nil {
		return "", fmt.Errorf("identity: unable to draw a code: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO identity_link_codes (requester_platform, requester_user_id, requester_login, requester_display,
			target_platform, target_user_id, target_login, target_display, code_hash, attempts, sent_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11)
		ON CONFLICT (requester_platform, requester_user_id) DO UPDATE SET
			requester_login = EXCLUDED.requester_login, requester_display = EXCLUDED.requester_display,
			target_platform = EXCLUDED.target_platform, target_user_id = EXCLUDED.target_user_id,
			target_login = EXCLUDED.target_login, target_display = EXCLUDED.target_display,
			code_hash = EXCLUDED.code_hash, attempts = 0, sent_at = EXCLUDED.sent_at, expires_at = EXCLUDED.expires_at`,
		me.platform, me.userID, me.login, me.display, target.platform, target.userID, target.login, target.display,
		codeHash(me.platform, me.userID, code), now, now.Add(CodeTTL)); err != nil {
		return "", fmt.Errorf("identity: unable to store a code: %w", err)
	}
	prefix := actions.CommandPrefix(inv)
	// The code goes only to the account being linked, privately: whoever
	// reads it there proves they hold that account.
	if err := actions.SendPrivately(ctx, dest, fmt.Sprintf(
		"WaddleBot link code: %s. %s on %s asked to link this account to theirs. If that was you, type %sverify %s there within %d minutes. If not, ignore this message.",
		code, actions.Clip(me.name(), 50), platformName(me.platform), prefix, code, int(CodeTTL.Minutes()))); err != nil {
		return "", err
	}
	return fmt.Sprintf("I sent a code privately to %s on %s. Type %sverify <code> here within %d minutes.",
		actions.Clip(target.name(), 50), platformName(platform), prefix, int(CodeTTL.Minutes())), nil
}

// verify serves `!verify <code>`.
func (m *module) verify(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, me account) (string, error) {
	prefix := actions.CommandPrefix(inv)
	code, ok := normalizeCode(inv.ArgText)
	if !ok {
		return fmt.Sprintf("Usage: %sverify <code>, with the %d-character code I sent to your other account.", prefix, CodeLength), nil
	}
	if err := lockLinks(ctx, tx); err != nil {
		return "", err
	}
	var target account
	var hash []byte
	var attempts int
	var expires time.Time
	err := tx.QueryRow(ctx, `
		SELECT target_platform, target_user_id, target_login, target_display, code_hash, attempts, expires_at
		FROM identity_link_codes WHERE requester_platform = $1 AND requester_user_id = $2`,
		me.platform, me.userID).Scan(&target.platform, &target.userID, &target.login, &target.display, &hash, &attempts, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("You have no link waiting. Start with %slink <twitch|discord|slack> <account>.", prefix), nil
	}
	if err != nil {
		return "", fmt.Errorf("identity: unable to read a pending code: %w", err)
	}
	forget := func() error {
		if _, err := tx.Exec(ctx, `DELETE FROM identity_link_codes WHERE requester_platform = $1 AND requester_user_id = $2`,
			me.platform, me.userID); err != nil {
			return fmt.Errorf("identity: unable to drop a code: %w", err)
		}
		return nil
	}
	if !m.clock.Now().Before(expires) {
		if err := forget(); err != nil {
			return "", err
		}
		return fmt.Sprintf("Your code has expired. Ask for a new one with %slink %s %s.", prefix, target.platform, target.login), nil
	}
	if subtle.ConstantTimeCompare(codeHash(me.platform, me.userID, code), hash) != 1 {
		attempts++
		if attempts >= MaxAttempts {
			if err := forget(); err != nil {
				return "", err
			}
			return fmt.Sprintf("That code is wrong, and that was the last try. Ask for a new one with %slink %s %s.", prefix, target.platform, target.login), nil
		}
		if _, err := tx.Exec(ctx, `UPDATE identity_link_codes SET attempts = $3 WHERE requester_platform = $1 AND requester_user_id = $2`,
			me.platform, me.userID, attempts); err != nil {
			return "", fmt.Errorf("identity: unable to count an attempt: %w", err)
		}
		left := MaxAttempts - attempts
		return fmt.Sprintf("That code is wrong; %d %s left.", left, plural(left, "try", "tries")), nil
	}
	if err := forget(); err != nil {
		return "", err
	}

	person, err := personOf(ctx, tx, me)
	if err != nil {
		return "", err
	}
	owner, err := personOf(ctx, tx, target)
	if err != nil {
		return "", err
	}
	switch {
	case owner != "" && owner == person:
		return fmt.Sprintf("%s on %s is linked to you already.", actions.Clip(target.name(), 50), platformName(target.platform)), nil
	case owner != "":
		return fmt.Sprintf("%s on %s was linked to someone else meanwhile; nothing changed.", actions.Clip(target.name(), 50), platformName(target.platform)), nil
	}
	if person == "" {
		person = uuid.NewString()
		if _, err := tx.Exec(ctx, `INSERT INTO persons (id) VALUES ($1)`, person); err != nil {
			return "", fmt.Errorf("identity: unable to create a person: %w", err)
		}
		if err := addAccount(ctx, tx, person, me); err != nil {
			return "", err
		}
	} else if have, ok, err := accountOn(ctx, tx, person, target.platform); err != nil {
		return "", err
	} else if ok {
		return fmt.Sprintf("Your %s account %s was linked meanwhile; %sunlink %s first to link another.",
			platformName(target.platform), actions.Clip(have.name(), 50), prefix, target.platform), nil
	}
	if err := addAccount(ctx, tx, person, target); err != nil {
		return "", err
	}
	actions.IdentityChanged(ctx)
	if err := m.st.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: me.platform + "/" + me.userID,
		Action: "identity.link", Target: target.platform + "/" + target.userID,
		Details: map[string]any{"person": person, "login": target.login, "from_login": me.login}}); err != nil {
		return "", fmt.Errorf("identity: unable to audit a link: %w", err)
	}
	return fmt.Sprintf("Linked: %s on %s is you too. Your reputation and labels now follow you on both.",
		actions.Clip(target.name(), 50), platformName(target.platform)), nil
}

func addAccount(ctx context.Context, tx pgx.Tx, person string, a account) error {
	if _, err := tx.Exec(ctx, `INSERT INTO person_accounts (platform, user_id, person_id, login, display_name) VALUES ($1, $2, $3, $4, $5)`,
		a.platform, a.userID, person, a.login, a.display); err != nil {
		return fmt.Errorf("identity: unable to link an account: %w", err)
	}
	return nil
}

// unlink serves `!unlink <platform>`: the person's account there leaves the
// person (this very account, when it names its own platform). What the
// person earned stays with the person's other accounts.
func (m *module) unlink(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, me account) (string, error) {
	prefix := actions.CommandPrefix(inv)
	word, _ := actions.CutWord(inv.ArgText)
	platform, ok := platformArg(word)
	if strings.EqualFold(word, me.platform) {
		platform, ok = me.platform, true
	}
	if !ok {
		return fmt.Sprintf("Usage: %sunlink <twitch|discord|slack>.", prefix), nil
	}
	if err := lockLinks(ctx, tx); err != nil {
		return "", err
	}
	person, err := personOf(ctx, tx, me)
	if err != nil {
		return "", err
	}
	if person == "" {
		return "You have no linked accounts.", nil
	}
	gone, ok, err := accountOn(ctx, tx, person, platform)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("You have no %s account linked.", platformName(platform)), nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM person_accounts WHERE platform = $1 AND user_id = $2`, gone.platform, gone.userID); err != nil {
		return "", fmt.Errorf("identity: unable to unlink an account: %w", err)
	}
	// A person with no account left is nobody.
	if _, err := tx.Exec(ctx, `DELETE FROM persons p WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM person_accounts a WHERE a.person_id = p.id)`, person); err != nil {
		return "", fmt.Errorf("identity: unable to drop an empty person: %w", err)
	}
	actions.IdentityChanged(ctx)
	if err := m.st.Audit(ctx, tx, store.AuditEntry{CommunityID: inv.Community.ID, Actor: me.platform + "/" + me.userID,
		Action: "identity.unlink", Target: gone.platform + "/" + gone.userID,
		Details: map[string]any{"person": person, "login": gone.login}}); err != nil {
		return "", fmt.Errorf("identity: unable to audit an unlink: %w", err)
	}
	if gone.platform == me.platform && gone.userID == me.userID {
		return fmt.Sprintf("This %s account is no longer linked to your other accounts.", platformName(platform)), nil
	}
	return fmt.Sprintf("Unlinked %s on %s.", actions.Clip(gone.name(), 50), platformName(platform)), nil
}

// whoami serves `!whoami`.
func (m *module) whoami(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, me account) (string, error) {
	prefix := actions.CommandPrefix(inv)
	var b strings.Builder
	fmt.Fprintf(&b, "You are %s on %s", actions.Clip(me.name(), 50), platformName(me.platform))
	person, err := personOf(ctx, tx, me)
	if err != nil {
		return "", err
	}
	var others []string
	if person != "" {
		accounts, err := m.st.PersonAccounts(ctx, tx, person)
		if err != nil {
			return "", err
		}
		for _, a := range accounts {
			if a.Platform == me.platform && a.UserID == me.userID {
				continue
			}
			name := a.DisplayName
			if name == "" {
				name = a.Login
			}
			others = append(others, actions.Clip(name, 50)+" on "+platformName(a.Platform))
		}
	}
	if len(others) == 0 {
		fmt.Fprintf(&b, ", not linked to other platforms. Link one with %slink <twitch|discord|slack> <account>.", prefix)
	} else {
		fmt.Fprintf(&b, ", linked with %s.", strings.Join(others, ", "))
	}
	var target account
	var expires time.Time
	err = tx.QueryRow(ctx, `SELECT target_platform, target_login, target_display, expires_at FROM identity_link_codes
		WHERE requester_platform = $1 AND requester_user_id = $2`, me.platform, me.userID).Scan(&target.platform, &target.login, &target.display, &expires)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("identity: unable to read a pending code: %w", err)
	}
	if left := expires.Sub(m.clock.Now()); err == nil && left > 0 {
		minutes := max(1, int(left.Round(time.Minute).Minutes()))
		fmt.Fprintf(&b, " A code for %s on %s is waiting (%d %s left): %sverify <code>.",
			actions.Clip(target.name(), 50), platformName(target.platform), minutes, plural(minutes, "minute", "minutes"), prefix)
	}
	return b.String(), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
