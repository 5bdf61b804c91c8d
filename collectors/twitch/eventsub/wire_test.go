package eventsub_test

import (
	"slices"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, m *eventsub.Message)
	}{
		{name: "welcome", in: `{"metadata":{"message_id":"96a3f3b5-5dec-4eed-908e-e11ee657416c","message_type":"session_welcome","message_timestamp":"2023-07-19T14:56:51.634234626Z"},"payload":{"session":{"id":"AQoQILE98gtqShGmLD7AM6yJThAB","status":"connected","connected_at":"2023-07-19T14:56:51.616329898Z","keepalive_timeout_seconds":10,"reconnect_url":null}}}`,
			check: func(t *testing.T, m *eventsub.Message) {
				if s := m.Payload.Session; s.ID != "AQoQILE98gtqShGmLD7AM6yJThAB" || s.KeepaliveTimeoutSeconds != 10 || s.ConnectedAt.IsZero() {
					t.Errorf("session %+v", s)
				}
			}},
		{name: "keepalive", in: `{"metadata":{"message_id":"84c1e79a-2a4b-4c13-ba0b-4312293e9308","message_type":"session_keepalive","message_timestamp":"2023-07-19T10:11:12.634234626Z"},"payload":{}}`},
		{name: "reconnect", in: `{"metadata":{"message_id":"84c1e79a","message_type":"session_reconnect","message_timestamp":"2022-11-18T09:10:11.634234626Z"},"payload":{"session":{"id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB","status":"reconnecting","keepalive_timeout_seconds":null,"reconnect_url":"wss://eventsub.wss.twitch.tv?...","connected_at":"2022-11-16T10:11:12.634234626Z"}}}`,
			check: func(t *testing.T, m *eventsub.Message) {
				if m.Payload.Session.ReconnectURL == "" {
					t.Error("no reconnect url")
				}
			}},
		{name: "notification", in: `{"metadata":{"message_id":"befa7b53","message_type":"notification","message_timestamp":"2022-11-16T10:11:12.464757833Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387","status":"enabled","type":"channel.follow","version":"2","cost":1,"condition":{"broadcaster_user_id":"12826","moderator_user_id":"12826"},"transport":{"method":"websocket","session_id":"AQoQexAWVYKSTIu4ec_2VAxyuhAB"},"created_at":"2022-11-16T10:11:12.464757833Z"},"event":{"user_id":"1337","user_login":"awesome_user","user_name":"Awesome_User","broadcaster_user_id":"12826","broadcaster_user_login":"twitch","broadcaster_user_name":"Twitch","followed_at":"2023-07-15T18:16:11.17106713Z"}}}`,
			check: func(t *testing.T, m *eventsub.Message) {
				n := m.Notification()
				if n.MessageID != "befa7b53" || n.Subscription.Type != "channel.follow" || n.Subscription.Transport.SessionID == "" || len(n.Event) == 0 || n.Timestamp.IsZero() {
					t.Errorf("notification %+v", n)
				}
			}},
		{name: "revocation", in: `{"metadata":{"message_id":"84c1e79a","message_type":"revocation","message_timestamp":"2022-11-16T10:11:12.464757833Z","subscription_type":"channel.follow","subscription_version":"2"},"payload":{"subscription":{"id":"f1c2a387","status":"authorization_revoked","type":"channel.follow","version":"2","cost":1,"condition":{"broadcaster_user_id":"12826"},"transport":{"method":"websocket","session_id":"x"},"created_at":"2022-11-16T10:11:12.464757833Z"}}}`,
			check: func(t *testing.T, m *eventsub.Message) {
				if m.Payload.Subscription.Status != "authorization_revoked" {
					t.Errorf("status %q", m.Payload.Subscription.Status)
				}
			}},
		{name: "not json", in: `{`, wantErr: true},
		{name: "no metadata", in: `{"payload":{}}`, wantErr: true},
		{name: "welcome without session", in: `{"metadata":{"message_id":"1","message_type":"session_welcome"},"payload":{}}`, wantErr: true},
		{name: "reconnect without url", in: `{"metadata":{"message_id":"1","message_type":"session_reconnect"},"payload":{"session":{"id":"x"}}}`, wantErr: true},
		{name: "notification without event", in: `{"metadata":{"message_id":"1","message_type":"notification"},"payload":{"subscription":{"id":"s","type":"stream.online"}}}`, wantErr: true},
		{name: "notification with null event", in: `{"metadata":{"message_id":"1","message_type":"notification"},"payload":{"subscription":{"id":"s","type":"stream.online"},"event":null}}`, wantErr: true},
		{name: "revocation without subscription", in: `{"metadata":{"message_id":"1","message_type":"revocation"},"payload":{}}`, wantErr: true},
		{name: "condition not strings", in: `{"metadata":{"message_id":"1","message_type":"revocation"},"payload":{"subscription":{"id":"s","type":"t","condition":{"a":1}}}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := eventsub.ParseMessage([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseMessage: %v, want error %v", err, tt.wantErr)
			}
			if tt.check != nil && m != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestParseWebhookBody(t *testing.T) {
	sub := `"subscription":{"id":"f1c2a387","status":"webhook_callback_verification_pending","type":"channel.follow","version":"2","condition":{"broadcaster_user_id":"12826"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"2019-11-16T10:11:12.634234626Z"}`
	tests := []struct {
		name, messageType, body string
		wantErr                 bool
	}{
		{"challenge", eventsub.TypeVerification, `{"challenge":"pogchamp-kappa-360noscope-vohiyo",` + sub + `}`, false},
		{"challenge missing", eventsub.TypeVerification, `{` + sub + `}`, true},
		{"notification", eventsub.TypeNotification, `{` + sub + `,"event":{"broadcaster_user_id":"12826"}}`, false},
		{"notification without event", eventsub.TypeNotification, `{` + sub + `}`, true},
		{"revocation", eventsub.TypeRevocation, `{` + sub + `}`, false},
		{"no subscription", eventsub.TypeRevocation, `{}`, true},
		{"garbage", eventsub.TypeNotification, `nope`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eventsub.ParseWebhookBody(tt.messageType, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseWebhookBody: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// Twitch's documented example: secret, id, timestamp and body give a
// signature anyone can recompute; here it is checked against a fixed value
// so a change in the order of the parts fails.
func TestSign(t *testing.T) {
	got := eventsub.Sign("s3cRe7", "e76c6bd4-55c9-4987-8304-da1588d8988b", "2019-11-16T10:11:12.634234626Z", []byte(`{"a":1}`))
	if want := "sha256=" + hmacHex("s3cRe7", "e76c6bd4-55c9-4987-8304-da1588d8988b2019-11-16T10:11:12.634234626Z{\"a\":1}"); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if eventsub.Sign("other", "e76c6bd4-55c9-4987-8304-da1588d8988b", "2019-11-16T10:11:12.634234626Z", []byte(`{"a":1}`)) == got {
		t.Error("the secret does not change the signature")
	}
}

func TestSpecsAndConditions(t *testing.T) {
	specs := eventsub.Specs()
	if len(specs) != 10 {
		t.Fatalf("%d specs, want 10", len(specs))
	}
	scopes := eventsub.BroadcasterScopes()
	for _, s := range specs {
		for _, sc := range s.Scopes {
			if !slices.Contains(scopes, sc) {
				t.Errorf("broadcaster scopes lack %s of %s", sc, s.Type)
			}
		}
		c := eventsub.Condition(s, "100")
		a := eventsub.AppCondition(s, "100", "200")
		switch s.Type {
		case eventsub.ChatMessage:
			if c["user_id"] != "100" || a["user_id"] != "200" || a["broadcaster_user_id"] != "100" {
				t.Errorf("chat conditions %v / %v", c, a)
			}
		case eventsub.Follow:
			if c["moderator_user_id"] != "100" || a["moderator_user_id"] != "100" {
				t.Errorf("follow conditions %v / %v", c, a)
			}
		case eventsub.Raid:
			if c["to_broadcaster_user_id"] != "100" || len(c) != 1 {
				t.Errorf("raid condition %v", c)
			}
		default:
			if c["broadcaster_user_id"] != "100" || len(c) != 1 {
				t.Errorf("%s condition %v", s.Type, c)
			}
		}
	}
	if !slices.Contains(scopes, "channel:bot") {
		t.Error("broadcaster scopes lack channel:bot")
	}
	for _, want := range []string{"user:read:chat", "user:write:chat", "user:bot"} {
		if !slices.Contains(eventsub.BotScopes(), want) {
			t.Errorf("bot scopes lack %s", want)
		}
	}
}
