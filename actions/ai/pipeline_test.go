package ai_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/ai/aitest"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// startPipeline runs the real pipeline with the AI module; every worker
// replica gets its own module instance on its own connection, as separate
// processes would.
func startPipeline(t *testing.T, fake *aitest.Ollama) *pipelinetest.Pipeline {
	t.Helper()
	d := ai.BuiltinDefaults()
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return ai.New(ai.Config{Store: st, Defaults: &d, Logger: logging.Discard()})
		}},
		TuneWorker: func(c *actions.Config) {
			if c.Module.Manifest.Name == ai.Name {
				c.Module = ai.New(ai.Config{Store: c.Store, Conn: c.Conn, Defaults: &d, Logger: logging.Discard()})
			}
		},
	})
	c := p.Community(pipelinetest.DefaultChannel)
	set := ollamaSettings(t, fake, map[string]any{"allow_provisional": true})
	p.Must(p.Store.SetModule(context.Background(), "test", c.ID, ai.Name, true, set))
	p.Must(p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))
	p.Must(p.Client.NC.Flush())
	return p
}

func TestPipelineAnswersAndKeepsOthersResponsive(t *testing.T) {
	fake := aitest.NewOllama(t)
	p := startPipeline(t, fake)

	var got string
	natstest.Eventually(t, pipelinetest.Wait, "the module enabled", func() bool {
		got = p.SayText("alice", "", "!ai what is a penguin")
		return strings.Contains(got, "You said")
	})
	if got != "🤖 You said: alice: what is a penguin" {
		t.Fatalf("!ai answered %q", got)
	}

	// A second replica continues the same conversation.
	p.StartWorker(ai.Name)
	if got := p.SayText("bob", "", "!ask and a puffin?"); got != "🤖 You said: bob: and a puffin?" {
		t.Fatalf("!ask answered %q", got)
	}
	reqs := fake.Requests()
	if last := reqs[len(reqs)-1]; len(last.Messages) < 4 {
		t.Fatalf("the conversation was not continued: %+v", last.Messages)
	}

	// While the model holds its answer, other modules still answer.
	held, release := fake.Hold()
	ctx, cancel := context.WithTimeout(context.Background(), pipelinetest.Wait)
	defer cancel()
	ev, _, err := console.SayAndWait(ctx, p.Client, console.Message{Channel: pipelinetest.DefaultChannel, User: "carol", Text: "!ai think hard"},
		console.SayOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(pipelinetest.Wait):
		t.Fatal("the question never reached the model")
	}
	if got := p.SayText("dave", "", "!ping"); got == "" {
		t.Fatal("!ping was not answered while the model thought")
	}
	release()
	natstest.Eventually(t, pipelinetest.Wait, "the held answer", func() bool {
		for _, r := range natstest.Decode[schemas.Reply](t, p.Client.JS, schemas.StreamReplies, "") {
			if r.EventID == ev.ID && strings.Contains(r.Text, "think hard") {
				return true
			}
		}
		return false
	})

	// A mention in plain chat asks too; other chat gets nothing.
	if got := p.SayText("erin", "", "hey @waddlebot, are you there?"); !strings.Contains(got, "erin: hey are you there?") {
		t.Fatalf("a mention answered %q", got)
	}
	p.Silent("erin", "", "just chatting here")

	// Reset through chat, by a moderator.
	if got := p.SayText("mo", "moderator", "!ai reset"); !strings.Contains(got, "forgotten") {
		t.Fatalf("reset answered %q", got)
	}
	p.Say("alice", "", "!ai fresh?")
	reqs = fake.Requests()
	if n := len(reqs[len(reqs)-1].Messages); n != 2 {
		t.Fatalf("after reset the model got %d messages", n)
	}
}
