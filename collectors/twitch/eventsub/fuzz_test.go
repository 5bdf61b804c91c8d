package eventsub_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
)

func hmacHex(secret, message string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(message))
	return hex.EncodeToString(mac.Sum(nil))
}

// FuzzParseMessage feeds WebSocket frames through ParseMessage and, for
// notifications, Normalize: neither may panic, and what ParseMessage accepts
// must carry what its type promises.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte(`{"metadata":{"message_id":"1","message_type":"session_welcome"},"payload":{"session":{"id":"x","keepalive_timeout_seconds":10}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := eventsub.ParseMessage(b)
		if err != nil {
			return
		}
		switch m.Metadata.MessageType {
		case eventsub.TypeSessionWelcome:
			if m.Payload.Session == nil || m.Payload.Session.ID == "" {
				t.Fatal("welcome accepted without a session id")
			}
		case eventsub.TypeNotification:
			ev, err := eventsub.Normalize(m.Notification())
			if err == nil && (ev.Channel.ID == "" || ev.OccurredAt.IsZero() || ev.ID == "") {
				t.Fatalf("Normalize made an incomplete event %+v", ev)
			}
		case eventsub.TypeRevocation:
			if m.Payload.Subscription == nil {
				t.Fatal("revocation accepted without a subscription")
			}
		}
	})
}

// FuzzParseWebhookBody does the same for webhook bodies.
func FuzzParseWebhookBody(f *testing.F) {
	f.Add(eventsub.TypeNotification, []byte(`{"subscription":{"id":"s","type":"channel.cheer","version":"1"},"event":{"broadcaster_user_id":"1","bits":5}}`))
	f.Fuzz(func(t *testing.T, messageType string, b []byte) {
		w, err := eventsub.ParseWebhookBody(messageType, b)
		if err != nil {
			return
		}
		if w.Subscription.ID == "" || w.Subscription.Type == "" {
			t.Fatal("body accepted without a subscription")
		}
		if messageType == eventsub.TypeNotification {
			_, _ = eventsub.Normalize(eventsub.Notification{MessageID: "m", Subscription: w.Subscription, Event: w.Event})
		}
	})
}
