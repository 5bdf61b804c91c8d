package labels

import (
	"context"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// TestConcurrentAddOfTheSameLabel: an add that loses a race for the same
// label answers "already" and leaves its transaction (which also holds the
// outbox's writes) usable.
func TestConcurrentAddOfTheSameLabel(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	community, err := st.ResolveChannel(ctx, store.Channel{Platform: schemas.PlatformConsole, ChannelID: "race", Name: "race"})
	if err != nil {
		t.Fatal(err)
	}
	mod := New(Config{Store: st})

	first, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx)
	if err := st.AddLabel(ctx, first, community.ID, schemas.PlatformConsole, "bob", "memories", "console/other", MaxPerUser); err != nil {
		t.Fatal(err)
	}

	inv := actionstest.Invocation(Name, "label", "add", "@bob", "memories")
	inv.Community = community
	second, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Rollback(ctx)
	type outcome struct {
		res *schemas.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// It reads no label yet, then waits on the first's lock.
		res, err := mod.Handle(ctx, inv, second)
		done <- outcome{res, err}
	}()
	select {
	case o := <-done:
		t.Fatalf("the second add did not wait for the first: %+v", o)
	case <-time.After(300 * time.Millisecond):
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if got, want := o.res.Replies[0].Text, "bob has the label memories already."; got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	var n int
	if err := second.QueryRow(ctx, `SELECT count(*) FROM labels WHERE user_login = 'bob'`).Scan(&n); err != nil {
		t.Fatalf("the transaction is not usable after the lost race: %v", err)
	}
	if err := second.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("bob has %d labels", n)
	}
}
