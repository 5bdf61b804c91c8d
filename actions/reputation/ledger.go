package reputation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// The score relative to the default, in hundredths of a point, is kept
// within these bounds: 300 and 850 points.
const (
	lowest  = (MinScore - DefaultScore) * 100
	highest = (MaxScore - DefaultScore) * 100
)

func clamp(v int64) int64 { return min(max(v, lowest), highest) }

// Points is the score shown for a running total (hundredths from the
// default, pending chat credit included): clamped, whole points rounded
// down. The portal and the REST API show leaderboards with it.
func Points(total int64) int { return int((DefaultScore*100 + clamp(total)) / 100) }

// Tier names a score as the reference does.
func Tier(score int) string {
	switch {
	case score >= 800:
		return "exceptional"
	case score >= 740:
		return "very good"
	case score >= 670:
		return "good"
	case score >= 580:
		return "fair"
	}
	return "poor"
}

// account is one platform account whose activity moves a subject's score.
type account struct {
	subject  string
	platform string
	userID   string
	login    string
	display  string
	// resolved: the subject already says whether the account has a person
	// (the router resolved the invoker's), so asPerson need not ask.
	resolved bool
}

// subjectKey is whom a score belongs to: the person, once the identity
// module links accounts (the router fills the invocation's person id), or
// else the platform account. The key is kept whole in the ledger, so a
// person's accounts share one score from the moment they are linked.
func subjectKey(personID, platform, userID string) string {
	if personID != "" {
		return "person:" + personID
	}
	return platform + ":" + userID
}

// subjectOf is whose score an event moves: the user who acted, or for a
// timeout or ban the user it struck. ok is false for events without one (an
// anonymous gift or cheer).
func subjectOf(inv *schemas.Invocation) (account, bool) {
	ev := &inv.Event
	u := ev.User
	personID := inv.PersonID
	resolved := true
	if ev.Kind == schemas.KindTimeout || ev.Kind == schemas.KindBan {
		if ev.Data == nil || ev.Data.Target == nil {
			return account{}, false
		}
		t := *ev.Data.Target
		if t.ID != u.ID || (t.ID == "" && t.Login != u.Login) {
			// The person id the router resolved is the moderator's.
			personID, resolved = "", false
		}
		u = t
	}
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
	return account{subject: subjectKey(personID, ev.Platform, id), platform: ev.Platform, userID: id, login: login,
		display: u.Name(), resolved: resolved}, true
}

// entry is one change to a subject's score.
type entry struct {
	community string
	who       account
	requested int64 // hundredths
	reason    string
	note      string
	source    string // a UUID: the event, the invocation or the chat batch
	actor     string
}

// recorded is what an entry did.
type recorded struct {
	applied int64 // what the score moved, after the bounds
	before  int64 // the total with pending chat credit, before and after
	after   int64
	fresh   bool // false: the source was recorded before, nothing moved
}

// remember notes the account under its subject, so `!rep @login` finds it.
func remember(ctx context.Context, tx pgx.Tx, community string, a account, at time.Time) error {
	if _, err := tx.Exec(ctx, `
		INSERT INTO reputation_accounts (community_id, platform, user_id, login, subject, seen_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (community_id, platform, user_id) DO UPDATE
		SET login = EXCLUDED.login, subject = EXCLUDED.subject, seen_at = EXCLUDED.seen_at`,
		community, a.platform, a.userID, a.login, a.subject, at); err != nil {
		return fmt.Errorf("reputation: unable to record the account: %w", err)
	}
	return nil
}

// lockScore creates the subject's running total if needed and locks it
// until the transaction ends, so concurrent entries for one subject take
// turns and each is clamped against the total before it.
func lockScore(ctx context.Context, tx pgx.Tx, community string, who account) (total, pending int64, err error) {
	err = tx.QueryRow(ctx, `
		INSERT INTO reputation_scores (community_id, subject, display_name) VALUES ($1, $2, $3)
		ON CONFLICT (community_id, subject) DO UPDATE
		SET display_name = CASE WHEN EXCLUDED.display_name = '' THEN reputation_scores.display_name ELSE EXCLUDED.display_name END
		RETURNING total, pending`, community, who.subject, who.display).Scan(&total, &pending)
	if err != nil {
		return 0, 0, fmt.Errorf("reputation: unable to lock the score: %w", err)
	}
	return total, pending, nil
}

// record appends an entry to the ledger and moves the running total with
// it. The entry's delta is what it really moved the score, so the ledger
// always sums to a score within 300..850 and a user at the top who is banned
// drops at once. A source recorded before for the subject changes nothing.
func record(ctx context.Context, tx pgx.Tx, e entry) (recorded, error) {
	total, pending, err := lockScore(ctx, tx, e.community, e.who)
	if err != nil {
		return recorded{}, err
	}
	applied := clamp(total+e.requested) - total
	tag, err := tx.Exec(ctx, `
		INSERT INTO reputation_ledger (community_id, subject, delta, requested, reason, note, source, actor)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (community_id, subject, source) DO NOTHING`,
		e.community, e.who.subject, applied, e.requested, e.reason, e.note, e.source, e.actor)
	if err != nil {
		return recorded{}, fmt.Errorf("reputation: unable to append to the ledger: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return recorded{before: total + pending, after: total + pending}, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE reputation_scores SET total = total + $3, updated_at = now()
		WHERE community_id = $1 AND subject = $2`, e.community, e.who.subject, applied); err != nil {
		return recorded{}, fmt.Errorf("reputation: unable to update the score: %w", err)
	}
	return recorded{applied: applied, before: total + pending, after: total + applied + pending, fresh: true}, nil
}

// creditChat adds one chat credit to the subject's pending credit, and folds
// the pending credit into the ledger once there are foldEvery credits or the
// oldest is foldAfter old.
func creditChat(ctx context.Context, tx pgx.Tx, community string, who account, amount int64, now time.Time, foldEvery int, foldAfter time.Duration) error {
	var count int
	var since time.Time
	err := tx.QueryRow(ctx, `
		INSERT INTO reputation_scores (community_id, subject, display_name, pending, pending_count, pending_since)
		VALUES ($1, $2, $3, $4, 1, $5)
		ON CONFLICT (community_id, subject) DO UPDATE
		SET pending = reputation_scores.pending + EXCLUDED.pending,
		    pending_count = reputation_scores.pending_count + 1,
		    pending_since = coalesce(reputation_scores.pending_since, EXCLUDED.pending_since),
		    display_name = CASE WHEN EXCLUDED.display_name = '' THEN reputation_scores.display_name ELSE EXCLUDED.display_name END,
		    updated_at = now()
		RETURNING pending_count, pending_since`, community, who.subject, who.display, amount, now).Scan(&count, &since)
	if err != nil {
		return fmt.Errorf("reputation: unable to credit chat: %w", err)
	}
	if count >= foldEvery || !now.Before(since.Add(foldAfter)) {
		return fold(ctx, tx, community, who.subject)
	}
	return nil
}

// fold writes a subject's pending chat credit to the ledger as one entry
// (under a fresh batch id: the transaction, not the id, makes it happen
// once) and empties it.
func fold(ctx context.Context, tx pgx.Tx, community, subject string) error {
	var total, pending int64
	var count int
	err := tx.QueryRow(ctx, `SELECT total, pending, pending_count FROM reputation_scores
		WHERE community_id = $1 AND subject = $2 FOR UPDATE`, community, subject).Scan(&total, &pending, &count)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reputation: unable to read pending chat credit: %w", err)
	}
	if count == 0 {
		return nil
	}
	applied := clamp(total+pending) - total
	if _, err := tx.Exec(ctx, `
		INSERT INTO reputation_ledger (community_id, subject, delta, requested, reason, note, source)
		VALUES ($1, $2, $3, $4, 'chat', $5, $6)`,
		community, subject, applied, pending, fmt.Sprintf("%d chat credits", count), uuid.NewString()); err != nil {
		return fmt.Errorf("reputation: unable to write chat credit to the ledger: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE reputation_scores
		SET total = total + $3, pending = 0, pending_count = 0, pending_since = NULL, updated_at = now()
		WHERE community_id = $1 AND subject = $2`, community, subject, applied); err != nil {
		return fmt.Errorf("reputation: unable to empty pending chat credit: %w", err)
	}
	return nil
}

// foldStale folds the chat credit pending since before cutoff, each subject
// in its own transaction so one lock held elsewhere holds up no other.
func foldStale(ctx context.Context, st *store.Store, cutoff time.Time) error {
	for {
		rows, err := st.Pool().Query(ctx, `SELECT community_id::text, subject FROM reputation_scores
			WHERE pending_count > 0 AND pending_since < $1 ORDER BY pending_since LIMIT 500`, cutoff)
		if err != nil {
			return fmt.Errorf("reputation: unable to list pending chat credit: %w", err)
		}
		type key struct{ community, subject string }
		keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (key, error) {
			var k key
			return k, r.Scan(&k.community, &k.subject)
		})
		if err != nil {
			return fmt.Errorf("reputation: unable to list pending chat credit: %w", err)
		}
		for _, k := range keys {
			if err := st.InTx(ctx, func(tx pgx.Tx) error { return fold(ctx, tx, k.community, k.subject) }); err != nil {
				return err
			}
		}
		if len(keys) < 500 {
			return nil
		}
	}
}

// standing is a subject's score as shown, with its rank in the community.
type standing struct {
	display string
	score   int
	rank    int
	of      int
}

// standingOf reads a subject's score (pending chat credit included); found
// is false when the subject has none.
func standingOf(ctx context.Context, q store.Querier, community, subject string) (s standing, found bool, err error) {
	var total int64
	err = q.QueryRow(ctx, `SELECT display_name, total + pending FROM reputation_scores WHERE community_id = $1 AND subject = $2`,
		community, subject).Scan(&s.display, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return standing{}, false, nil
	}
	if err != nil {
		return standing{}, false, fmt.Errorf("reputation: unable to read the score: %w", err)
	}
	s.score = Points(total)
	// Ranked by the score shown: everyone at the ceiling shares the top.
	err = q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE least(greatest(total + pending, $3), $4) > $2) + 1, count(*)
		FROM reputation_scores WHERE community_id = $1`, community, clamp(total), int64(lowest), int64(highest)).Scan(&s.rank, &s.of)
	if err != nil {
		return standing{}, false, fmt.Errorf("reputation: unable to rank the score: %w", err)
	}
	return s, true, nil
}

// leader is one line of !top.
type leader struct {
	display string
	score   int
}

// leaders are the community's n highest scores.
func leaders(ctx context.Context, q store.Querier, community string, n int) ([]leader, error) {
	rows, err := q.Query(ctx, `SELECT display_name, total + pending FROM reputation_scores WHERE community_id = $1
		ORDER BY total + pending DESC, lower(display_name), subject LIMIT $2`, community, n)
	if err != nil {
		return nil, fmt.Errorf("reputation: unable to read the leaders: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (leader, error) {
		var l leader
		var total int64
		err := r.Scan(&l.display, &total)
		l.score = Points(total)
		return l, err
	})
}

// findAccount finds the subject a name typed in chat means: a login or a
// user id (a Discord or Slack mention), preferring an account on the
// platform asked from, then a login over an id, then the latest seen.
func findAccount(ctx context.Context, q store.Querier, community, platform, name string) (account, bool, error) {
	var a account
	err := q.QueryRow(ctx, `SELECT subject, platform, user_id, login FROM reputation_accounts
		WHERE community_id = $1 AND (lower(login) = $2 OR lower(user_id) = $2)
		ORDER BY platform = $3 DESC, lower(login) = $2 DESC, seen_at DESC LIMIT 1`,
		community, name, platform).Scan(&a.subject, &a.platform, &a.userID, &a.login)
	if errors.Is(err, pgx.ErrNoRows) {
		return account{}, false, nil
	}
	if err != nil {
		return account{}, false, fmt.Errorf("reputation: unable to look the user up: %w", err)
	}
	a.display = a.login
	return a, true, nil
}
