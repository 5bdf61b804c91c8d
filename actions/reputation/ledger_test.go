package reputation

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

func community(t *testing.T, st *store.Store) string {
	t.Helper()
	c, err := st.ResolveChannel(context.Background(), store.Channel{Platform: schemas.PlatformConsole, ChannelID: "rep-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func inTx(t *testing.T, st *store.Store, fn func(tx pgx.Tx) error) {
	t.Helper()
	if err := st.InTx(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// scoreRow reads a subject's running total and pending credit, and checks
// that the ledger sums to the total.
func scoreRow(t *testing.T, st *store.Store, community, subject string) (total, pending int64, count int) {
	t.Helper()
	ctx := context.Background()
	if err := st.Pool().QueryRow(ctx, `SELECT total, pending, pending_count FROM reputation_scores WHERE community_id = $1 AND subject = $2`,
		community, subject).Scan(&total, &pending, &count); err != nil {
		t.Fatal(err)
	}
	var sum int64
	if err := st.Pool().QueryRow(ctx, `SELECT coalesce(sum(delta), 0) FROM reputation_ledger WHERE community_id = $1 AND subject = $2`,
		community, subject).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if sum != total {
		t.Errorf("the ledger sums to %d, the running total is %d", sum, total)
	}
	return total, pending, count
}

func ledgerRows(t *testing.T, st *store.Store, community, subject string) []int64 {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT delta FROM reputation_ledger WHERE community_id = $1 AND subject = $2 ORDER BY id`, community, subject)
	if err != nil {
		t.Fatal(err)
	}
	deltas, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return deltas
}

var bob = account{subject: "twitch:b1", platform: "twitch", userID: "b1", login: "bob", display: "Bob"}

func TestRecordOnceAndClamped(t *testing.T) {
	st := storetest.New(t)
	c := community(t, st)
	ctx := context.Background()
	source := uuid.NewString()
	for range 2 {
		inTx(t, st, func(tx pgx.Tx) error {
			_, err := record(ctx, tx, entry{community: c, who: bob, requested: 100, reason: "follow", source: source})
			return err
		})
	}
	if total, _, _ := scoreRow(t, st, c, bob.subject); total != 100 {
		t.Fatalf("one follow recorded twice: total %d, want 100", total)
	}
	// Three bans from 601: 401, then 300 (the floor), then nothing; a
	// follow then counts at once, as the floor did not swallow it.
	for _, want := range []int64{-20000, -10100, 0, 100} {
		requested, reason := int64(-20000), "ban"
		if want == 100 {
			requested, reason = 100, "follow"
		}
		inTx(t, st, func(tx pgx.Tx) error {
			r, err := record(ctx, tx, entry{community: c, who: bob, requested: requested, reason: reason, source: uuid.NewString()})
			if err == nil && r.applied != want {
				t.Errorf("%s applied %d, want %d", reason, r.applied, want)
			}
			return err
		})
	}
	if total, _, _ := scoreRow(t, st, c, bob.subject); Points(total) != 301 {
		t.Errorf("score %d, want 301", Points(total))
	}
	if got := ledgerRows(t, st, c, bob.subject); len(got) != 5 {
		t.Errorf("ledger %v, want 5 entries", got)
	}
}

func TestChatCreditFoldsInBatches(t *testing.T) {
	st := storetest.New(t)
	c := community(t, st)
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	credit := func(at time.Time) {
		inTx(t, st, func(tx pgx.Tx) error { return creditChat(ctx, tx, c, bob, 1, at, 3, 10*time.Minute) })
	}
	for i := range 2 {
		credit(start.Add(time.Duration(i) * time.Minute))
	}
	if total, pending, n := scoreRow(t, st, c, bob.subject); total != 0 || pending != 2 || n != 2 {
		t.Fatalf("after 2 credits: total %d pending %d (%d), want 0, 2 (2)", total, pending, n)
	}
	credit(start.Add(2 * time.Minute)) // the third: one ledger entry for all three
	if total, pending, n := scoreRow(t, st, c, bob.subject); total != 3 || pending != 0 || n != 0 {
		t.Fatalf("after 3 credits: total %d pending %d (%d), want 3, 0 (0)", total, pending, n)
	}
	if got := ledgerRows(t, st, c, bob.subject); len(got) != 1 || got[0] != 3 {
		t.Fatalf("ledger %v, want one entry of 3", got)
	}
	// One more credit, then nothing for a while: it waits, shown but not in
	// the ledger, until housekeeping folds it.
	credit(start.Add(3 * time.Minute))
	if err := foldStale(ctx, st, start.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, pending, _ := scoreRow(t, st, c, bob.subject); pending != 1 {
		t.Fatalf("a fresh credit folded early: pending %d", pending)
	}
	if err := foldStale(ctx, st, start.Add(14*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if total, pending, _ := scoreRow(t, st, c, bob.subject); total != 4 || pending != 0 {
		t.Fatalf("after housekeeping: total %d pending %d, want 4, 0", total, pending)
	}
	// A credit arriving FoldAfter after the first pending one folds at once.
	credit(start.Add(20 * time.Minute))
	credit(start.Add(31 * time.Minute))
	if got := ledgerRows(t, st, c, bob.subject); len(got) != 3 || got[2] != 2 {
		t.Fatalf("ledger %v, want a third entry of 2", got)
	}
}

func TestLedgerIsAppendOnly(t *testing.T) {
	st := storetest.New(t)
	c := community(t, st)
	ctx := context.Background()
	inTx(t, st, func(tx pgx.Tx) error {
		_, err := record(ctx, tx, entry{community: c, who: bob, requested: 100, reason: "follow", source: uuid.NewString()})
		return err
	})
	for _, q := range []string{`UPDATE reputation_ledger SET delta = 5000`, `DELETE FROM reputation_ledger`} {
		if _, err := st.Pool().Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want it refused", q, err)
		}
	}
	// A community that goes takes its ledger with it.
	if _, err := st.Pool().Exec(ctx, `DELETE FROM communities WHERE id = $1`, c); err != nil {
		t.Fatalf("deleting the community: %v", err)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM reputation_ledger WHERE community_id = $1`, c).Scan(&n); err != nil || n != 0 {
		t.Errorf("ledger rows left: %d (%v)", n, err)
	}
}
