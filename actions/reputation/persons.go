package reputation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/store"
)

// personPrefix starts the subject key of a person.
const personPrefix = "person:"

// asPerson puts an account under its person's key when the account is
// linked to one: the router resolves the invoker's person (so plain chat
// costs no lookup here), but not that of someone a command or an event
// names (a ban's target, `!rep @bob`).
func asPerson(ctx context.Context, tx pgx.Tx, a account) (account, error) {
	if a.resolved || strings.HasPrefix(a.subject, personPrefix) {
		return a, nil
	}
	person, err := store.PersonIn(ctx, tx, a.platform, a.userID)
	if err != nil || person == "" {
		return a, err
	}
	a.subject = personPrefix + person
	return a, nil
}

// mergePerson moves, in one community, the scores that a person's accounts
// earned under their own keys (before they were linked) to the person's, so
// a person linked on two platforms has one score that counts both
// histories, whichever platform asks. It runs lazily, the first time the
// person is seen in a community after a link, so linking touches no
// community the person is not active in. The ledger stays append-only: each
// move is a pair of 'merge' entries, one taking the account's total away and
// one giving it (within the bounds) to the person, and the account's
// running total is removed with its share of the leaderboard.
//
// An account that was once another person's keeps that person's score
// there: the other person may still have other accounts.
func mergePerson(ctx context.Context, tx pgx.Tx, community, personID, display string) error {
	person := personPrefix + personID
	rows, err := tx.Query(ctx, `
		SELECT ra.platform, ra.user_id, ra.login, ra.subject FROM reputation_accounts ra
		JOIN person_accounts pa ON pa.platform = ra.platform AND pa.user_id = ra.user_id
		WHERE ra.community_id = $1 AND pa.person_id = $2 AND ra.subject <> $3
		ORDER BY ra.platform, ra.user_id`, community, personID, person)
	if err != nil {
		return fmt.Errorf("reputation: unable to find a person's accounts: %w", err)
	}
	stale, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (account, error) {
		var a account
		return a, r.Scan(&a.platform, &a.userID, &a.login, &a.subject)
	})
	if err != nil {
		return fmt.Errorf("reputation: unable to find a person's accounts: %w", err)
	}
	if len(stale) == 0 {
		return nil
	}
	ptotal, _, err := lockScore(ctx, tx, community, account{subject: person, display: display})
	if err != nil {
		return err
	}
	for _, a := range stale {
		if !strings.HasPrefix(a.subject, personPrefix) {
			moved, err := moveScore(ctx, tx, community, a.subject, person, ptotal)
			if err != nil {
				return err
			}
			ptotal += moved
		}
		if _, err := tx.Exec(ctx, `UPDATE reputation_accounts SET subject = $4
			WHERE community_id = $1 AND platform = $2 AND user_id = $3`, community, a.platform, a.userID, person); err != nil {
			return fmt.Errorf("reputation: unable to move an account to its person: %w", err)
		}
	}
	return nil
}

// moveScore moves one account subject's total and pending chat credit to the
// person, whose total before is ptotal, and returns what the person's total
// moved.
func moveScore(ctx context.Context, tx pgx.Tx, community, from, person string, ptotal int64) (int64, error) {
	var total, pending int64
	var count int
	var since *time.Time
	err := tx.QueryRow(ctx, `DELETE FROM reputation_scores WHERE community_id = $1 AND subject = $2
		RETURNING total, pending, pending_count, pending_since`, community, from).Scan(&total, &pending, &count, &since)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reputation: unable to take an account's score: %w", err)
	}
	applied := clamp(ptotal+total) - ptotal
	if total != 0 {
		if _, err := tx.Exec(ctx, `
			INSERT INTO reputation_ledger (community_id, subject, delta, requested, reason, note, source)
			VALUES ($1, $2, $3, $3, 'merge', $4, $5), ($1, $6, $7, $8, 'merge', $9, $5)`,
			community, from, -total, "moved to "+person, uuid.NewString(),
			person, applied, total, "from "+from); err != nil {
			return 0, fmt.Errorf("reputation: unable to record a merge: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE reputation_scores
		SET total = total + $3, pending = pending + $4, pending_count = pending_count + $5,
		    pending_since = least(pending_since, $6), updated_at = now()
		WHERE community_id = $1 AND subject = $2`, community, person, applied, pending, count, since); err != nil {
		return 0, fmt.Errorf("reputation: unable to add a merged score: %w", err)
	}
	return applied, nil
}

// settle puts an account under its person, when it has one, after merging
// that person's scores in the community: every path that reads or moves a
// score goes through it, so no score is read from a key the person left.
func settle(ctx context.Context, tx pgx.Tx, community string, a account) (account, error) {
	a, err := asPerson(ctx, tx, a)
	if err != nil {
		return account{}, err
	}
	if person, ok := strings.CutPrefix(a.subject, personPrefix); ok {
		if err := mergePerson(ctx, tx, community, person, a.display); err != nil {
			return account{}, err
		}
	}
	return a, nil
}
