package inventory_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/inventory"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// handlerRig calls the handler directly in transactions the test controls,
// to show where one invocation waits for another.
type handlerRig struct {
	t         *testing.T
	st        *store.Store
	mod       actions.Module
	community schemas.Community
}

func newRig(t *testing.T) *handlerRig {
	st := storetest.New(t)
	c, err := st.ResolveChannel(ctx(t), store.Channel{Platform: schemas.PlatformConsole, ChannelID: actionstest.Channel, Name: actionstest.Channel})
	if err != nil {
		t.Fatal(err)
	}
	return &handlerRig{t: t, st: st, mod: inventory.New(inventory.Config{Store: st}), community: c}
}

func (r *handlerRig) invocation(args ...string) *schemas.Invocation {
	inv := actionstest.Invocation(inventory.Name, inventory.Command, args...)
	inv.Community = r.community
	inv.Event.User.Roles = []schemas.Role{schemas.RoleModerator}
	return inv
}

func (r *handlerRig) begin() pgx.Tx {
	tx, err := r.st.Pool().Begin(ctx(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = tx.Rollback(ctx(r.t)) })
	return tx
}

func (r *handlerRig) run(tx pgx.Tx, args ...string) string {
	res, err := r.mod.Handle(ctx(r.t), r.invocation(args...), tx)
	if err != nil {
		r.t.Fatalf("!inv %v: %v", args, err)
	}
	return res.Replies[0].Text
}

// runCommitted runs one command in its own transaction and commits it.
func (r *handlerRig) runCommitted(args ...string) string {
	tx := r.begin()
	text := r.run(tx, args...)
	if err := tx.Commit(ctx(r.t)); err != nil {
		r.t.Fatal(err)
	}
	return text
}

// runBlocked starts a command in another transaction that must wait for a
// lock; its reply arrives on the channel once it got through and committed.
func (r *handlerRig) runBlocked(args ...string) <-chan string {
	out := make(chan string, 1)
	tx := r.begin()
	go func() {
		res, err := r.mod.Handle(ctx(r.t), r.invocation(args...), tx)
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		if err := tx.Commit(ctx(r.t)); err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- res.Replies[0].Text
	}()
	select {
	case text := <-out:
		r.t.Fatalf("!inv %v did not wait for the other transaction: %q", args, text)
	case <-time.After(300 * time.Millisecond):
	}
	return out
}

func receive(t *testing.T, c <-chan string) string {
	t.Helper()
	select {
	case text := <-c:
		return text
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting transaction never finished")
		return ""
	}
}

// TestCheckoutWaitsForTheItemLock: the second checkout of the last unit
// waits on the item's row lock and then sees it gone.
func TestCheckoutWaitsForTheItemLock(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	if got := r.runCommitted("add", "lamp"); got != "Added lamp ×1." {
		t.Fatal(got)
	}
	first := r.begin()
	if got := r.run(first, "checkout", "lamp", "@ann"); got != "Checked out 1 lamp to @ann; 0 of 1 left." {
		t.Fatal(got)
	}
	second := r.runBlocked("checkout", "lamp", "@ben")
	if err := first.Commit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, second); got != "No lamp is available: all 1 is checked out (!inv status lamp shows who has them)." {
		t.Fatalf("second checkout: %q", got)
	}
	var n int
	if err := r.st.Pool().QueryRow(ctx(t), `SELECT count(*) FROM inventory_checkouts`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d checkouts (%v), want 1", n, err)
	}
}

// TestConcurrentAddsOfANewName: two adds of one new name at once make one
// item with both quantities, whatever the case each typed.
func TestConcurrentAddsOfANewName(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	first := r.begin()
	if got := r.run(first, "add", "Desk", "2", "wood"); got != "Added Desk ×2 [wood]." {
		t.Fatal(got)
	}
	second := r.runBlocked("add", "desk", "3", "oak")
	if err := first.Commit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, second); got != "Desk was already there: added 3, now Desk ×5 [oak, wood]." {
		t.Fatalf("second add: %q", got)
	}
}

// TestRemoveWaitsForCheckout: a removal racing a checkout sees the unit out.
func TestRemoveWaitsForCheckout(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.runCommitted("add", "tripod", "2")
	first := r.begin()
	r.run(first, "checkout", "tripod", "@ann")
	second := r.runBlocked("remove", "tripod")
	if err := first.Commit(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, second); got != "Can't remove tripod: 1 of 2 is checked out; check them in first (!inv status tripod shows who has them)." {
		t.Fatalf("remove: %q", got)
	}
}

// TestRepliesFitTwitch: with every field at its longest, each reply is one
// Twitch message (500 characters).
func TestRepliesFitTwitch(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	name := strings.Repeat("🎤", inventory.MaxNameLength)
	quoted := name // arguments arrive split already
	label := func(c string) string { return strings.Repeat(c, 32) }
	limit := schemas.TextLimit(schemas.PlatformTwitch)
	say := func(args ...string) string {
		t.Helper()
		inv := r.invocation(args...)
		inv.Event.Platform = schemas.PlatformTwitch
		inv.Event.User.DisplayName = strings.Repeat("D", 25)
		tx := r.begin()
		res, err := r.mod.Handle(ctx(t), inv, tx)
		if err != nil {
			t.Fatalf("!inv %v: %v", args, err)
		}
		if err := tx.Commit(ctx(t)); err != nil {
			t.Fatal(err)
		}
		text := res.Replies[0].Text
		if n := utf8.RuneCountInString(text); n > limit {
			t.Errorf("!inv %.40v… replies with %d characters, over %d: %q", args, n, limit, text)
		}
		return text
	}
	say("add", quoted, "100000", label("a"), label("b"), label("c"), label("d"), label("e"))
	say("add", quoted, "1", label("f"), label("g"), label("h"), label("i"), label("j"))
	say("add", quoted, "99999")
	for i := range 12 {
		say("checkout", quoted, "@"+strings.Repeat(string(rune('a'+i)), 64))
	}
	say("checkin", quoted, "@"+strings.Repeat("z", 64))
	for page := 1; page <= 3; page++ {
		say("status", quoted, fmt.Sprint(page))
	}
	say("list")
	say("list", "out")
	say("search", strings.Repeat("🎤", 64))
	say("remove", quoted)
	say("frobnicate")
	say("unlabel", quoted, label("z"))
	say("checkout", strings.Repeat("x", 30), strings.Repeat("y", 30), "@"+strings.Repeat("u", 64))
}
