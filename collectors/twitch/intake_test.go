package twitch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
)

func chatNotification(deliveryID, chatMessageID, chatterID string) eventsub.Notification {
	event := fmt.Sprintf(`{"broadcaster_user_id":"100","broadcaster_user_login":"streamer","chatter_user_id":%q,
		"chatter_user_login":"u%s","message_id":%q,"message":{"text":"!ping"},"badges":[]}`, chatterID, chatterID, chatMessageID)
	return eventsub.Notification{
		MessageID: deliveryID, Timestamp: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Subscription: eventsub.Subscription{ID: "sub-1", Type: eventsub.ChatMessage, Version: "1", Status: "enabled"},
		Event:        json.RawMessage(event),
	}
}

func newTestIntake(accounts *intakeAccounts, pub *recordingPublisher, clock *intakeClock) *twitch.Intake {
	return twitch.NewIntake(twitch.IntakeConfig{Publisher: pub, Accounts: accounts, Logger: logging.Discard(), Now: clock.Now})
}

func TestIntakeDropsTheBotsOwnMessages(t *testing.T) {
	accounts := &intakeAccounts{}
	accounts.set(nil, bot("900"), broadcasterAccount("100"))
	pub := &recordingPublisher{}
	clock := &intakeClock{now: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	in := newTestIntake(accounts, pub, clock)
	ctx := context.Background()

	if err := in.Deliver(ctx, chatNotification("d1", "c1", "900")); err != nil {
		t.Fatal(err)
	}
	if err := in.Deliver(ctx, chatNotification("d2", "c2", "42")); err != nil {
		t.Fatal(err)
	}
	got := pub.published()
	if len(got) != 1 || got[0].User.ID != "42" {
		t.Fatalf("published %d events (%+v), want only the viewer's", len(got), got)
	}

	// The bot account changes; the cached id holds until Forget.
	accounts.set(nil, bot("901"))
	if err := in.Deliver(ctx, chatNotification("d3", "c3", "901")); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.published()); n != 2 {
		t.Fatalf("%d published before Forget, want 2 (cache still names the old bot)", n)
	}
	in.Forget()
	if err := in.Deliver(ctx, chatNotification("d4", "c4", "901")); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.published()); n != 2 {
		t.Fatalf("%d published after Forget, want the new bot's message dropped", n)
	}
}

func TestIntakeBotLookupCachedAndFailureDoesNotBlock(t *testing.T) {
	accounts := &intakeAccounts{}
	accounts.set(errors.New("database down"))
	pub := &recordingPublisher{}
	clock := &intakeClock{now: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	in := newTestIntake(accounts, pub, clock)
	ctx := context.Background()

	// The lookup fails: messages flow on, as if there were no bot.
	for i := range 3 {
		if err := in.Deliver(ctx, chatNotification(fmt.Sprint("d", i), fmt.Sprint("c", i), "900")); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(pub.published()); n != 3 {
		t.Fatalf("%d published while the lookup fails, want 3", n)
	}
	if n := accounts.lookupCount(); n != 1 {
		t.Fatalf("%d lookups within the retry pause, want 1", n)
	}
	// Back up: the next lookup, after the pause, finds the bot.
	accounts.set(nil, bot("900"))
	clock.advance(6 * time.Second)
	if err := in.Deliver(ctx, chatNotification("d9", "c9", "900")); err != nil {
		t.Fatal(err)
	}
	if n := len(pub.published()); n != 3 {
		t.Fatalf("bot message published after the lookup recovered")
	}
	// Known: no new lookup within the minute, one after it.
	before := accounts.lookupCount()
	clock.advance(30 * time.Second)
	_ = in.Deliver(ctx, chatNotification("d10", "c10", "42"))
	if accounts.lookupCount() != before {
		t.Error("looked the bot up again within its minute")
	}
	clock.advance(31 * time.Second)
	_ = in.Deliver(ctx, chatNotification("d11", "c11", "42"))
	if accounts.lookupCount() != before+1 {
		t.Error("did not look the bot up again after its minute")
	}
}

func TestIntakeDedupesAndRetriesFailedPublishes(t *testing.T) {
	accounts := &intakeAccounts{}
	pub := &recordingPublisher{fail: errors.New("nats down")}
	clock := &intakeClock{now: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	in := newTestIntake(accounts, pub, clock)
	ctx := context.Background()

	n := chatNotification("d1", "c1", "42")
	if err := in.Deliver(ctx, n); err == nil {
		t.Fatal("Deliver hid a failed publish")
	}
	pub.mu.Lock()
	pub.fail = nil
	pub.mu.Unlock()
	// Twitch redelivers: the failed one was not remembered, so it goes out.
	if err := in.Deliver(ctx, n); err != nil {
		t.Fatal(err)
	}
	// The same chat message over another transport (other delivery id).
	if err := in.Deliver(ctx, chatNotification("d2", "c1", "42")); err != nil {
		t.Fatal(err)
	}
	if got := len(pub.published()); got != 1 {
		t.Fatalf("published %d, want 1", got)
	}
}

func TestIntakeIgnoresUnmappedAndMalformed(t *testing.T) {
	accounts := &intakeAccounts{}
	pub := &recordingPublisher{}
	in := newTestIntake(accounts, pub, &intakeClock{now: time.Now()})
	tests := []eventsub.Notification{
		{MessageID: "x", Timestamp: time.Now(), Subscription: eventsub.Subscription{Type: "channel.update", Version: "2"}, Event: json.RawMessage(`{}`)},
		{MessageID: "y", Timestamp: time.Now(), Subscription: eventsub.Subscription{Type: eventsub.StreamOnline, Version: "1"}, Event: json.RawMessage(`{}`)},
	}
	for _, n := range tests {
		if err := in.Deliver(context.Background(), n); err != nil {
			t.Errorf("%s: %v, want nil (retrying cannot help)", n.Subscription.Type, err)
		}
	}
	if len(pub.published()) != 0 {
		t.Error("published an unmapped or malformed notification")
	}
	// Non-chat kinds do not need the bot lookup.
	if accounts.lookupCount() != 0 {
		t.Error("looked up the bot for non-chat events")
	}
}
