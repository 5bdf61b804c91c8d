package console

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// pipeline plays router, module and sender for SayAndWait: for every
// console event it publishes what answer returns, as replies to that event.
func pipeline(t *testing.T, conn *natsx.Conn, answer func(ev schemas.Event) []schemas.Reply) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := conn.JS.OrderedConsumer(ctx, schemas.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.SubjectEvents + ".console.>"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var ev schemas.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Errorf("pipeline: event not JSON: %v", err)
			return
		}
		for _, r := range answer(ev) {
			body, _ := json.Marshal(r)
			if _, err := conn.JS.Publish(ctx, r.Subject(), body, jetstream.WithMsgID(r.ID)); err != nil && ctx.Err() == nil {
				t.Errorf("pipeline: publish reply: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Stop(); cancel() })
}

// replyTo builds part n of parts of the reply to ev by the given route.
func replyTo(ev schemas.Event, route string, n, parts int, text string) schemas.Reply {
	inv := schemas.InvocationID(ev.ID, "core", route)
	return schemas.Reply{
		Version: schemas.Version, ID: schemas.ReplyID(inv, n), InvocationID: inv, EventID: ev.ID,
		Module: "core", Target: schemas.TargetOf(&ev), Text: text, Part: n, Parts: parts,
		CreatedAt: time.Now().UTC(),
	}
}

func TestSayAndWaitCollectsTheRepliesToItsEvent(t *testing.T) {
	env := natstest.Start(t, nil)
	pipeline(t, env.Connect(t), func(ev schemas.Event) []schemas.Reply {
		// Someone else's reply on the same channel comes first: not ours.
		stranger := ev
		stranger.ID = schemas.NewEventID()
		return []schemas.Reply{
			replyTo(stranger, "cmd:ping", 1, 1, "someone else's pong"),
			replyTo(ev, "cmd:help", 1, 2, "commands: !ping, !help,"),
			replyTo(ev, "cmd:help", 2, 2, "!quote"),
			replyTo(ev, "on:chat", 1, 1, "hello, "+ev.User.Name()),
		}
	})
	client := env.Connect(t)
	ev, replies, err := SayAndWait(context.Background(), client,
		Message{Channel: "demo", User: "ada", Role: "vip", Text: "!help", ID: "say-1"},
		SayOptions{Wait: 5 * time.Second, Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != schemas.EventID("console", "say-1") || !ev.User.HasRole(schemas.RoleVIP) {
		t.Fatalf("event %+v", ev)
	}
	var texts []string
	for _, r := range replies {
		if r.EventID != ev.ID {
			t.Errorf("reply %q belongs to event %s", r.Text, r.EventID)
		}
		texts = append(texts, r.Text)
	}
	if want := "commands: !ping, !help,|!quote|hello, ada"; strings.Join(texts, "|") != want {
		t.Fatalf("replies %q, want %q", texts, want)
	}
}

func TestSayAndWaitWithoutAPipelineSaysSo(t *testing.T) {
	env := natstest.Start(t, nil)
	start := time.Now()
	ev, replies, err := SayAndWait(context.Background(), env.Conn,
		Message{Channel: "demo", User: "ada", Text: "!ping"}, SayOptions{Wait: 300 * time.Millisecond})
	if !errors.Is(err, ErrNoReply) {
		t.Fatalf("err = %v, want ErrNoReply", err)
	}
	if !strings.Contains(err.Error(), "within 300ms") || !strings.Contains(err.Error(), "waddlebot dev") {
		t.Errorf("error %q does not say what to check", err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("took %s for a 300ms wait", elapsed)
	}
	if ev == nil || len(replies) != 0 {
		t.Fatalf("event %v, replies %v", ev, replies)
	}
	if n := len(readEvents(t, env)); n != 1 {
		t.Fatalf("WB_EVENTS holds %d events, want the one said", n)
	}
}

func TestSayAndWaitWaitsForEveryPart(t *testing.T) {
	env := natstest.Start(t, nil)
	pipeline(t, env.Connect(t), func(ev schemas.Event) []schemas.Reply {
		return []schemas.Reply{replyTo(ev, "cmd:quote", 1, 3, "part one"), replyTo(ev, "cmd:quote", 3, 3, "part three")}
	})
	start := time.Now()
	_, replies, err := SayAndWait(context.Background(), env.Conn,
		Message{Channel: "demo", User: "ada", Text: "!quote"},
		SayOptions{Wait: 700 * time.Millisecond, Quiet: 50 * time.Millisecond})
	if !errors.Is(err, ErrIncompleteReply) || len(replies) != 2 {
		t.Fatalf("err %v with %d replies; want ErrIncompleteReply with the 2 that came", err, len(replies))
	}
	// Quiet alone would have ended the wait long before Wait did.
	if elapsed := time.Since(start); elapsed < 600*time.Millisecond {
		t.Fatalf("gave up on the missing part after %s, before Wait", elapsed)
	}
}

func TestSayAndWaitNoWaitPublishesOnly(t *testing.T) {
	env := natstest.Start(t, nil)
	ev, replies, err := SayAndWait(context.Background(), env.Conn,
		Message{Channel: "demo", User: "ada", Text: "!ping"}, SayOptions{NoWait: true, Wait: time.Minute})
	if err != nil || ev == nil || replies != nil {
		t.Fatalf("NoWait = %v, %v, %v", ev, replies, err)
	}
	events := readEvents(t, env)
	if len(events) != 1 || events[0].ID != ev.ID {
		t.Fatalf("WB_EVENTS holds %+v", events)
	}
}

func TestSayAndWaitRejectsBadMessages(t *testing.T) {
	env := natstest.Start(t, nil)
	_, _, err := SayAndWait(context.Background(), env.Conn, Message{Channel: "no spaces", User: "ada", Text: "hi"}, SayOptions{})
	if !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("err = %v, want ErrInvalidMessage", err)
	}
	if n := len(readEvents(t, env)); n != 0 {
		t.Fatalf("a bad message was published")
	}
}

func TestSayAndWaitStopsWithItsContext(t *testing.T) {
	env := natstest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err := SayAndWait(ctx, env.Conn, Message{Channel: "demo", User: "ada", Text: "!ping"}, SayOptions{Wait: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
}
