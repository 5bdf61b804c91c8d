package twitch_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const webhookSecret = "a-webhook-secret-of-some-length"

var webhookNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

const followBody = `{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","type":"channel.follow","version":"2","status":"enabled","cost":0,
"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/twitch"},
"created_at":"2019-11-16T10:11:12.634234626Z"},"event":{"user_id":"1234","user_login":"cool_user","user_name":"Cool_User",
"broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"2024-05-06T07:08:00Z"}}`

// webhookRequest is a request as Twitch signs it.
func webhookRequest(messageType, id string, sent time.Time, body, secret string) *http.Request {
	stamp := sent.Format(time.RFC3339Nano)
	r := httptest.NewRequest(http.MethodPost, "/webhooks/twitch", strings.NewReader(body))
	r.Header.Set("Twitch-Eventsub-Message-Id", id)
	r.Header.Set("Twitch-Eventsub-Message-Timestamp", stamp)
	r.Header.Set("Twitch-Eventsub-Message-Signature", eventsub.Sign(secret, id, stamp, []byte(body)))
	r.Header.Set("Twitch-Eventsub-Message-Type", messageType)
	r.Header.Set("Content-Type", "application/json")
	return r
}

type webhookEnv struct {
	handler http.Handler
	env     *natstest.Env
	revoked []eventsub.Subscription
}

func newWebhookEnv(t *testing.T) *webhookEnv {
	t.Helper()
	e := &webhookEnv{env: natstest.Start(t, nil)}
	intake := twitch.NewIntake(twitch.IntakeConfig{Publisher: collectors.NewPublisher(e.env.Conn.JS, logging.Discard()),
		Accounts: &intakeAccounts{}, Logger: logging.Discard()})
	h, err := twitch.NewWebhook(twitch.WebhookConfig{Secret: webhookSecret, Intake: intake, Now: func() time.Time { return webhookNow },
		OnRevocation: func(_ context.Context, sub eventsub.Subscription) { e.revoked = append(e.revoked, sub) },
		Logger:       logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = h
	return e
}

func (e *webhookEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, r)
	return w
}

func (e *webhookEnv) events(t *testing.T) []schemas.Event {
	return natstest.Decode[schemas.Event](t, e.env.Conn.JS, schemas.StreamEvents, "")
}

func TestWebhookRequests(t *testing.T) {
	tests := []struct {
		name       string
		request    func() *http.Request
		wantStatus int
		wantEvents int
	}{
		{"notification accepted", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow.Add(-time.Second), followBody, webhookSecret)
		}, http.StatusNoContent, 1},
		{"bad signature", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow, followBody, "some-other-secret")
		}, http.StatusForbidden, 0},
		{"body changed after signing", func() *http.Request {
			r := webhookRequest("notification", "m-1", webhookNow, followBody, webhookSecret)
			r.Body = httptestBody(strings.Replace(followBody, "cool_user", "evil_user", 1))
			return r
		}, http.StatusForbidden, 0},
		{"replay of an old message", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow.Add(-11*time.Minute), followBody, webhookSecret)
		}, http.StatusForbidden, 0},
		{"timestamp far ahead", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow.Add(11*time.Minute), followBody, webhookSecret)
		}, http.StatusForbidden, 0},
		{"unknown type", func() *http.Request {
			return webhookRequest("something_new", "m-1", webhookNow, followBody, webhookSecret)
		}, http.StatusBadRequest, 0},
		{"missing headers", func() *http.Request {
			r := webhookRequest("notification", "m-1", webhookNow, followBody, webhookSecret)
			r.Header.Del("Twitch-Eventsub-Message-Signature")
			return r
		}, http.StatusBadRequest, 0},
		{"signed garbage", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow, `{"nope":true}`, webhookSecret)
		}, http.StatusBadRequest, 0},
		{"too large", func() *http.Request {
			return webhookRequest("notification", "m-1", webhookNow, `{"x":"`+strings.Repeat("a", 1<<20)+`"}`, webhookSecret)
		}, http.StatusRequestEntityTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newWebhookEnv(t)
			w := e.serve(tt.request())
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", w.Code, w.Body.String(), tt.wantStatus)
			}
			events := e.events(t)
			if len(events) != tt.wantEvents {
				t.Fatalf("%d events published, want %d", len(events), tt.wantEvents)
			}
			if tt.wantEvents == 1 {
				ev := events[0]
				if ev.Kind != schemas.KindFollow || ev.Channel.ID != "1337" || ev.User.Login != "cool_user" ||
					ev.ID != schemas.EventID("twitch", "m-1") {
					t.Errorf("published %+v", ev)
				}
			}
		})
	}
}

func TestWebhookChallenge(t *testing.T) {
	e := newWebhookEnv(t)
	body := `{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387","status":"webhook_callback_verification_pending",
"type":"channel.follow","version":"2","cost":1,"condition":{"broadcaster_user_id":"12826"},"transport":{"method":"webhook",
"callback":"https://example.com/webhooks/twitch"},"created_at":"2019-11-16T10:11:12.634234626Z"}}`
	w := e.serve(webhookRequest("webhook_callback_verification", "v-1", webhookNow, body, webhookSecret))
	if w.Code != http.StatusOK || w.Body.String() != "pogchamp-kappa-360noscope-vohiyo" {
		t.Fatalf("status %d body %q, want 200 and the challenge", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q, want text/plain", ct)
	}
	// A challenge signed with another secret is not answered.
	w = e.serve(webhookRequest("webhook_callback_verification", "v-2", webhookNow, body, "some-other-secret"))
	if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "pogchamp") {
		t.Errorf("unsigned challenge: status %d body %q", w.Code, w.Body.String())
	}
}

func TestWebhookRevocation(t *testing.T) {
	e := newWebhookEnv(t)
	body := `{"subscription":{"id":"f1c2a387","status":"authorization_revoked","type":"channel.follow","version":"2","cost":1,
"condition":{"broadcaster_user_id":"1337"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/twitch"},
"created_at":"2019-11-16T10:11:12.634234626Z"}}`
	w := e.serve(webhookRequest("revocation", "r-1", webhookNow, body, webhookSecret))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d, want 204", w.Code)
	}
	if len(e.revoked) != 1 || e.revoked[0].ID != "f1c2a387" || e.revoked[0].Status != "authorization_revoked" {
		t.Fatalf("OnRevocation heard %+v", e.revoked)
	}
}

func TestWebhookDuplicateNotificationPublishedOnce(t *testing.T) {
	e := newWebhookEnv(t)
	for i := range 3 {
		// Twitch retries with the same message id and a new timestamp.
		w := e.serve(webhookRequest("notification", "m-dup", webhookNow.Add(time.Duration(i)*time.Second), followBody, webhookSecret))
		if w.Code != http.StatusNoContent {
			t.Fatalf("delivery %d: status %d", i, w.Code)
		}
	}
	if msgs := natstest.Messages(t, e.env.Conn.JS, schemas.StreamEvents, "wb.events.twitch.>"); len(msgs) != 1 {
		t.Fatalf("WB_EVENTS holds %d messages, want 1", len(msgs))
	}
}

func TestWebhookPublishFailureAsksForRetry(t *testing.T) {
	pub := &recordingPublisher{fail: errors.New("nats down")}
	intake := twitch.NewIntake(twitch.IntakeConfig{Publisher: pub, Accounts: &intakeAccounts{}})
	h, err := twitch.NewWebhook(twitch.WebhookConfig{Secret: webhookSecret, Intake: intake, Now: func() time.Time { return webhookNow }})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, webhookRequest("notification", "m-1", webhookNow, followBody, webhookSecret))
	if w.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 so Twitch retries", w.Code)
	}
}

func TestNewWebhookRefusesWeakConfig(t *testing.T) {
	intake := twitch.NewIntake(twitch.IntakeConfig{Publisher: &recordingPublisher{}, Accounts: &intakeAccounts{}})
	if _, err := twitch.NewWebhook(twitch.WebhookConfig{Secret: "short", Intake: intake}); err == nil {
		t.Error("a 5-character secret was accepted")
	}
	if _, err := twitch.NewWebhook(twitch.WebhookConfig{Secret: webhookSecret}); err == nil {
		t.Error("no intake was accepted")
	}
}
