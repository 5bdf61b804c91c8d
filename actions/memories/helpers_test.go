package memories_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

// start runs the pipeline with the memories module on clk (nil: the wall
// clock), which the module and the workers' schedulers share.
func start(t testing.TB, clk clock.Clock) *pipelinetest.Pipeline {
	t.Helper()
	return pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return memories.New(memories.Config{Store: st, Clock: clk})
		}},
		Clock: clk,
		// These tests type more commands a minute than a person may.
		TuneRouter: func(c *router.Config) { c.UserRateLimit, c.ChannelRateLimit = 100000, 100000 },
	})
}

// expect checks that text gets exactly the reply want.
func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := p.SayText(user, role, text); got != want {
		t.Errorf("%s (%s) says %q:\n got %q\nwant %q", user, role, text, got, want)
	}
}

// expectContains checks that text gets a reply containing every one of wants.
func expectContains(t *testing.T, p *pipelinetest.Pipeline, user, role, text string, wants ...string) string {
	t.Helper()
	got := p.SayText(user, role, text)
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s (%s) says %q:\n got %q\nwant it to contain %q", user, role, text, got, w)
		}
	}
	return got
}

// sayAll types every text at once without waiting, then waits until the
// pipeline has worked through them: concurrent users.
func sayAll(t *testing.T, p *pipelinetest.Pipeline, user, role string, texts []string) {
	t.Helper()
	errs := make(chan error, len(texts))
	for _, text := range texts {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), pipelinetest.Wait)
			defer cancel()
			_, _, err := console.SayAndWait(ctx, p.Client, console.Message{Channel: pipelinetest.DefaultChannel, User: user, Role: role, Text: text},
				console.SayOptions{NoWait: true})
			errs <- err
		}()
	}
	for range texts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p.Settle()
}

// lastInvocation is the newest invocation of the memories module whose
// argument text is argText, as the router stored it in WB_COMMANDS.
func lastInvocation(t *testing.T, p *pipelinetest.Pipeline, command, argText string) schemas.Invocation {
	t.Helper()
	invs := natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(memories.Name))
	for i := len(invs) - 1; i >= 0; i-- {
		if invs[i].Command == command && invs[i].ArgText == argText {
			return invs[i]
		}
	}
	t.Fatalf("no invocation of !%s %s in %s", command, argText, schemas.StreamCommands)
	return schemas.Invocation{}
}

// redeliver publishes a stored invocation again under another message id,
// as a redelivery after a lost ack would reach the worker, and returns the
// replies to it once the worker has handled it.
func redeliver(t *testing.T, p *pipelinetest.Pipeline, inv schemas.Invocation) []actionstest.Reply {
	t.Helper()
	before := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
	if len(before) == 0 {
		t.Fatalf("invocation %s has no reply to compare with", inv.ID)
	}
	actionstest.PublishAs(t, p.Client.JS, &inv, inv.ID+"-again")
	p.Settle()
	after := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
	if len(after) != len(before) {
		t.Fatalf("redelivery published %d replies, want the %d there were", len(after), len(before))
	}
	for i := range after {
		if after[i].ID != before[i].ID || after[i].Text != before[i].Text {
			t.Errorf("reply %d after redelivery is %s %q, was %s %q", i, after[i].ID, after[i].Text, before[i].ID, before[i].Text)
		}
	}
	// The redelivery reached the worker and was answered from the outbox.
	if n := p.Count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1`, inv.ID); n != 1 {
		t.Errorf("invocation %s has %d outbox rows, want 1", inv.ID, n)
	}
	return after
}

// waitReply waits for a reply (a reminder firing) whose text is text.
func waitReply(t *testing.T, p *pipelinetest.Pipeline, text string) actionstest.Reply {
	t.Helper()
	var found actionstest.Reply
	natstest.Eventually(t, pipelinetest.Wait, "a reply "+text, func() bool {
		for _, r := range actionstest.Replies(t, p.Client.JS) {
			if r.Text == text {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// repliesWith counts the replies whose text is text.
func repliesWith(t *testing.T, p *pipelinetest.Pipeline, text string) int {
	t.Helper()
	n := 0
	for _, r := range actionstest.Replies(t, p.Client.JS) {
		if r.Text == text {
			n++
		}
	}
	return n
}

// eventually retries cond for up to the pipeline's wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, pipelinetest.Wait, what, cond)
}

var _ = time.Second
