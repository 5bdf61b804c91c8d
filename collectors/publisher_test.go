package collectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

func chatEvent(platformKey string) *schemas.Event {
	return &schemas.Event{
		ID: schemas.EventID(schemas.PlatformConsole, platformKey), Platform: schemas.PlatformConsole,
		PlatformEventID: platformKey, Kind: schemas.KindChat,
		Channel:    schemas.Channel{ID: "dev room", Name: "dev room"},
		User:       schemas.User{ID: "ada", Login: "ada"},
		Text:       "!ping",
		OccurredAt: time.Now().UTC(),
	}
}

func TestPublishCompletesAndDedupesByID(t *testing.T) {
	env := natstest.Start(t, nil)
	pub := collectors.NewPublisher(env.Conn.JS, logging.Discard())
	ctx := context.Background()
	inBefore := metricValue(t, "waddlebot_events_published_total", map[string]string{"platform": "console", "kind": "chat"})

	ev := chatEvent("msg-1")
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if ev.Version != schemas.Version || ev.ReceivedAt.IsZero() {
		t.Fatalf("Publish left version %d, received_at %v", ev.Version, ev.ReceivedAt)
	}
	// The platform delivers the same message again: a new envelope, same id.
	if err := pub.Publish(ctx, chatEvent("msg-1")); err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, env.Conn, schemas.StreamEvents)
	if len(msgs) != 1 {
		t.Fatalf("WB_EVENTS holds %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	// The channel id holds a space: the subject must carry it encoded.
	if want := "wb.events.console.dev=20room.chat"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
		t.Errorf("Nats-Msg-Id %q, want %q", got, ev.ID)
	}
	var stored schemas.Event
	if err := json.Unmarshal(m.Data, &stored); err != nil {
		t.Fatal(err)
	}
	if err := stored.Validate(); err != nil {
		t.Errorf("stored event invalid: %v", err)
	}
	if stored.ID != ev.ID || stored.Version != schemas.Version || stored.ReceivedAt.IsZero() {
		t.Errorf("stored event %+v", stored)
	}
	inAfter := metricValue(t, "waddlebot_events_published_total", map[string]string{"platform": "console", "kind": "chat"})
	if inAfter-inBefore != 1 {
		t.Errorf("events_published grew by %v, want 1 (the duplicate is not an event)", inAfter-inBefore)
	}

	other := chatEvent("msg-2")
	if err := pub.Publish(ctx, other); err != nil {
		t.Fatal(err)
	}
	if n := len(readStream(t, env.Conn, schemas.StreamEvents)); n != 2 {
		t.Fatalf("a different message id made %d messages in total, want 2", n)
	}
}

func TestPublishRejectsInvalidEvents(t *testing.T) {
	env := natstest.Start(t, nil)
	pub := collectors.NewPublisher(env.Conn.JS, logging.Discard())
	broken := map[string]func(*schemas.Event){
		"no channel":       func(e *schemas.Event) { e.Channel.ID = "" },
		"unknown platform": func(e *schemas.Event) { e.Platform = "myspace" },
		"id not a uuid":    func(e *schemas.Event) { e.ID = "msg-1" },
		"chat without user": func(e *schemas.Event) {
			e.User = schemas.User{}
		},
		"future version": func(e *schemas.Event) { e.Version = schemas.Version + 1 },
	}
	for name, breakIt := range broken {
		t.Run(name, func(t *testing.T) {
			ev := chatEvent("msg-" + name)
			breakIt(ev)
			err := pub.Publish(context.Background(), ev)
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("Publish = %v, want an error wrapping schemas.ErrInvalid", err)
			}
		})
	}
	if n := len(readStream(t, env.Conn, schemas.StreamEvents)); n != 0 {
		t.Fatalf("invalid events reached WB_EVENTS: %d messages", n)
	}
}
