package inventory_test

import (
	"context"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/inventory"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

// start runs the pipeline with the inventory module. The router's rate
// limits are raised: these tests type faster than any chat.
func start(t *testing.T) *pipelinetest.Pipeline {
	t.Helper()
	return pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{
			func(st *store.Store) actions.Module { return inventory.New(inventory.Config{Store: st}) },
		},
		TuneRouter: func(c *router.Config) {
			c.UserRateLimit, c.ChannelRateLimit = 100000, 100000
		},
	})
}

// expect says text as user and checks the whole reply.
func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := p.SayText(user, role, text); got != want {
		t.Errorf("%s (%s) says %q\n got: %q\nwant: %q", user, role, text, got, want)
	}
}

// send publishes chat without waiting for its reply.
func send(t *testing.T, p *pipelinetest.Pipeline, user, role, text string) *schemas.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pipelinetest.Wait)
	defer cancel()
	ev, _, err := console.SayAndWait(ctx, p.Client, console.Message{Channel: pipelinetest.DefaultChannel, User: user, Role: role, Text: text},
		console.SayOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// repliesTo returns the reply texts to an event, once the pipeline settled.
func repliesTo(t *testing.T, p *pipelinetest.Pipeline, eventID string) []string {
	t.Helper()
	var out []string
	for _, r := range natstest.Decode[schemas.Reply](t, p.Client.JS, schemas.StreamReplies, "") {
		if r.EventID == eventID {
			out = append(out, r.Text)
		}
	}
	return out
}

// invocations returns what the router sent the module, oldest first.
func invocations(t *testing.T, p *pipelinetest.Pipeline) []schemas.Invocation {
	t.Helper()
	return natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(inventory.Name))
}

// lastInvocation is the latest invocation whose argument text is argText.
func lastInvocation(t *testing.T, p *pipelinetest.Pipeline, argText string) schemas.Invocation {
	t.Helper()
	invs := invocations(t, p)
	for i := len(invs) - 1; i >= 0; i-- {
		if invs[i].ArgText == argText {
			return invs[i]
		}
	}
	t.Fatalf("no invocation of !inv %s", argText)
	return schemas.Invocation{}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
