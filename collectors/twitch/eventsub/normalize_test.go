package eventsub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// The inputs are webhook bodies in the shape of the examples of Twitch's
// EventSub reference; each golden file is the event Normalize makes of one.
func TestNormalizeGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	kinds := map[schemas.Kind]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			body, err := eventsub.ParseWebhookBody(eventsub.TypeNotification, raw)
			if err != nil {
				t.Fatal(err)
			}
			n := eventsub.Notification{
				MessageID: "befa7b53-d79d-478f-86b9-120f112b044e", Timestamp: time.Date(2019, 11, 16, 10, 11, 12, 464757833, time.UTC),
				Subscription: body.Subscription, Event: body.Event,
			}
			ev, err := eventsub.Normalize(n)
			if err != nil {
				t.Fatal(err)
			}
			kinds[ev.Kind] = true
			ev.Version = schemas.Version
			ev.ReceivedAt = n.Timestamp
			if err := ev.Validate(); err != nil {
				t.Fatalf("normalized event is invalid: %v", err)
			}
			got, err := json.MarshalIndent(ev, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("event differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
	for _, k := range []schemas.Kind{schemas.KindChat, schemas.KindFollow, schemas.KindSubscription, schemas.KindGift,
		schemas.KindCheer, schemas.KindRaid, schemas.KindBan, schemas.KindUnban, schemas.KindTimeout,
		schemas.KindStreamOnline, schemas.KindStreamOffline} {
		if !kinds[k] {
			t.Errorf("no golden input makes a %s event", k)
		}
	}
}

func notification(typ, version, event string) eventsub.Notification {
	return eventsub.Notification{
		MessageID: "m-1", Timestamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Subscription: eventsub.Subscription{ID: "s-1", Type: typ, Version: version},
		Event:        json.RawMessage(event),
	}
}

func TestNormalizeRefuses(t *testing.T) {
	tests := []struct {
		name        string
		n           eventsub.Notification
		wantIgnored bool
	}{
		{"unmapped type", notification("channel.update", "2", `{"broadcaster_user_id":"1"}`), true},
		{"unmapped version", notification(eventsub.Follow, "1", `{"broadcaster_user_id":"1"}`), true},
		{"no broadcaster", notification(eventsub.StreamOffline, "1", `{}`), false},
		{"event not an object", notification(eventsub.Cheer, "1", `[1]`), false},
		{"chat without message id", notification(eventsub.ChatMessage, "1",
			`{"broadcaster_user_id":"1","chatter_user_id":"2","message":{"text":"hi"}}`), false},
		{"no time at all", eventsub.Notification{MessageID: "m", Subscription: eventsub.Subscription{Type: eventsub.StreamOffline, Version: "1"},
			Event: json.RawMessage(`{"broadcaster_user_id":"1"}`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := eventsub.Normalize(tt.n)
			if err == nil {
				t.Fatalf("Normalize made %+v, want an error", ev)
			}
			if got := errors.Is(err, eventsub.ErrIgnored); got != tt.wantIgnored {
				t.Errorf("errors.Is(%v, ErrIgnored) = %v, want %v", err, got, tt.wantIgnored)
			}
		})
	}
}

// The event id of a chat message follows the chat message, not the
// delivery: the same message delivered twice (two transports) is one event.
func TestChatEventIDFollowsMessageID(t *testing.T) {
	event := `{"broadcaster_user_id":"1","chatter_user_id":"2","message_id":"chat-1","message":{"text":"hi"}}`
	a := notification(eventsub.ChatMessage, "1", event)
	b := a
	b.MessageID = "m-2"
	evA, err := eventsub.Normalize(a)
	if err != nil {
		t.Fatal(err)
	}
	evB, err := eventsub.Normalize(b)
	if err != nil {
		t.Fatal(err)
	}
	if evA.ID != evB.ID || evA.ID != schemas.EventID("twitch", "chat-1") || evA.PlatformEventID != "chat-1" {
		t.Errorf("ids %s / %s (platform %s), want both %s", evA.ID, evB.ID, evA.PlatformEventID, schemas.EventID("twitch", "chat-1"))
	}
	follow := notification(eventsub.Follow, "2", `{"broadcaster_user_id":"1","user_id":"2"}`)
	ev, err := eventsub.Normalize(follow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != schemas.EventID("twitch", "m-1") || ev.PlatformEventID != "m-1" {
		t.Errorf("follow id %s (platform %s), want the delivery's", ev.ID, ev.PlatformEventID)
	}
}
