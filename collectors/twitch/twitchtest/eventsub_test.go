package twitchtest_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
)

type wireMessage struct {
	Metadata struct {
		MessageID   string `json:"message_id"`
		MessageType string `json:"message_type"`
	} `json:"metadata"`
	Payload struct {
		Session struct {
			ID        string `json:"id"`
			Keepalive int    `json:"keepalive_timeout_seconds"`
		} `json:"session"`
	} `json:"payload"`
}

func dialFake(t *testing.T, fake *twitchtest.Server, query string) (*websocket.Conn, wireMessage) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(fake.Endpoints().EventSub+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws, readWire(t, ws)
}

func readWire(t *testing.T, ws *websocket.Conn) wireMessage {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var m wireMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// closeCodeOf reads until the socket ends and returns its close code.
func closeCodeOf(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("socket ended without a close frame: %v", err)
		}
	}
}

func TestEventSubWelcomeKeepalive(t *testing.T) {
	tests := []struct {
		query string
		want  int
	}{
		{"", 10},
		{"?keepalive_timeout_seconds=30", 30},
		{"?keepalive_timeout_seconds=2", 10},     // nearest acceptable
		{"?keepalive_timeout_seconds=9000", 600}, // nearest acceptable
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			fake := twitchtest.New(t)
			_, welcome := dialFake(t, fake, tt.query)
			if welcome.Metadata.MessageType != "session_welcome" || welcome.Payload.Session.ID == "" {
				t.Fatalf("first message = %+v", welcome)
			}
			if welcome.Payload.Session.Keepalive != tt.want {
				t.Errorf("keepalive = %d, want %d", welcome.Payload.Session.Keepalive, tt.want)
			}
		})
	}
}

func TestEventSubCloseCodes(t *testing.T) {
	tests := []struct {
		name string
		do   func(fake *twitchtest.Server, ws *websocket.Conn, sessionID string)
		want int
	}{
		{"inbound traffic", func(_ *twitchtest.Server, ws *websocket.Conn, _ string) {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{}`))
		}, twitchtest.CloseClientSentTraffic},
		{"unused", func(fake *twitchtest.Server, _ *websocket.Conn, _ string) {}, twitchtest.CloseConnectionUnused},
		{"closed by the test", func(fake *twitchtest.Server, _ *websocket.Conn, id string) {
			fake.CloseSession(id, twitchtest.CloseNetworkError)
		}, twitchtest.CloseNetworkError},
		{"reconnect never followed", func(fake *twitchtest.Server, _ *websocket.Conn, id string) {
			fake.Reconnect(id)
		}, twitchtest.CloseReconnectExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := twitchtest.New(t)
			fake.SetSubscribeWindow(-1)
			if tt.want == twitchtest.CloseConnectionUnused {
				fake.SetSubscribeWindow(50 * time.Millisecond)
			}
			fake.SetReconnectGrace(50 * time.Millisecond)
			ws, welcome := dialFake(t, fake, "")
			tt.do(fake, ws, welcome.Payload.Session.ID)
			if code := closeCodeOf(t, ws); code != tt.want {
				t.Errorf("close code = %d, want %d", code, tt.want)
			}
		})
	}
}

func TestEventSubReconnectKeepsSession(t *testing.T) {
	fake := twitchtest.New(t)
	fake.SetSubscribeWindow(-1)
	old, welcome := dialFake(t, fake, "")
	id := welcome.Payload.Session.ID
	fake.Reconnect(id)
	var msg struct {
		Payload struct {
			Session struct {
				ReconnectURL string `json:"reconnect_url"`
			} `json:"session"`
		} `json:"payload"`
	}
	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := old.ReadJSON(&msg); err != nil || msg.Payload.Session.ReconnectURL == "" {
		t.Fatalf("session_reconnect = %+v, %v", msg, err)
	}
	ws, _, err := websocket.DefaultDialer.Dial(msg.Payload.Session.ReconnectURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if again := readWire(t, ws); again.Payload.Session.ID != id {
		t.Errorf("welcome after reconnect has session %q, want %q", again.Payload.Session.ID, id)
	}
	if code := closeCodeOf(t, old); code != twitchtest.CloseReconnectExpired {
		t.Errorf("old socket closed with %d, want 4004", code)
	}
	if s := fake.Sessions(); len(s) != 1 || s[0].ID != id || !s[0].Connected {
		t.Errorf("sessions = %+v", s)
	}
}

// postSubscription sends Create EventSub Subscription with a raw body and
// returns the status and the Ratelimit-Reset header.
func postSubscription(t *testing.T, fake *twitchtest.Server, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, fake.Endpoints().API+"/eventsub/subscriptions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Client-Id", fake.ClientID)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := fake.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Ratelimit-Reset")
}

func TestCreateWebSocketSubscriptionIsStrict(t *testing.T) {
	fake := twitchtest.New(t)
	fake.SetSubscribeWindow(-1)
	fake.AddUser(twitchtest.User{ID: "1971641", Login: "streamer"})
	token := fake.IssueToken("1971641", time.Hour, "user:read:chat").Access
	_, welcome := dialFake(t, fake, "")
	session := welcome.Payload.Session.ID
	body := func(condition, transport string) string {
		return `{"type":"stream.online","version":"1","condition":` + condition + `,"transport":` + transport + `}`
	}
	good := `{"method":"websocket","session_id":"` + session + `"}`
	tests := []struct {
		name string
		body string
		want int
	}{
		// What helix's EventSubSubscription struct sends: every field.
		{"empty callback and secret", body(`{"broadcaster_user_id":"1971641"}`,
			`{"method":"websocket","callback":"","secret":"","session_id":"`+session+`"}`), http.StatusBadRequest},
		{"empty condition field", body(`{"broadcaster_user_id":"1971641","user_id":""}`, good), http.StatusBadRequest},
		{"as Twitch documents it", body(`{"broadcaster_user_id":"1971641"}`, good), http.StatusAccepted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := postSubscription(t, fake, token, tt.body); status != tt.want {
				t.Errorf("status = %d, want %d", status, tt.want)
			}
		})
	}
}

func TestFailNextSubscriptions(t *testing.T) {
	fake := twitchtest.New(t)
	fake.SetSubscribeWindow(-1)
	fake.AddUser(twitchtest.User{ID: "1971641", Login: "streamer"})
	token := fake.IssueToken("1971641", time.Hour, "user:read:chat").Access
	_, welcome := dialFake(t, fake, "")
	body := func(subType string) string {
		return `{"type":"` + subType + `","version":"1","condition":{"broadcaster_user_id":"1971641"},` +
			`"transport":{"method":"websocket","session_id":"` + welcome.Payload.Session.ID + `"}}`
	}
	fake.FailNextSubscriptions("stream.online", 1, http.StatusTooManyRequests, 30*time.Second)
	fake.FailNextSubscriptions("channel.ban", -1, http.StatusForbidden, 0)

	if status, _ := postSubscription(t, fake, token, body("stream.offline")); status != http.StatusAccepted {
		t.Errorf("another type: status %d, want 202", status)
	}
	status, reset := postSubscription(t, fake, token, body("stream.online"))
	if at, err := strconv.ParseInt(reset, 10, 64); status != http.StatusTooManyRequests || err != nil || at < time.Now().Add(20*time.Second).Unix() {
		t.Errorf("queued 429: status %d, Ratelimit-Reset %q", status, reset)
	}
	if status, _ := postSubscription(t, fake, token, body("stream.online")); status != http.StatusAccepted {
		t.Errorf("after the one failure: status %d, want 202", status)
	}
	for range 3 {
		if status, _ := postSubscription(t, fake, token, body("channel.ban")); status != http.StatusForbidden {
			t.Errorf("failing until cleared: status %d, want 403", status)
		}
	}
	fake.FailNextSubscriptions("channel.ban", 0, 0, 0)
	if status, _ := postSubscription(t, fake, token, body("channel.ban")); status != http.StatusAccepted {
		t.Errorf("cleared: status %d, want 202", status)
	}
}

// With HoldRetired the old socket of a session_reconnect stays open after
// the new one's welcome and can still be sent to, until ReleaseRetired.
func TestEventSubHoldRetired(t *testing.T) {
	fake := twitchtest.New(t)
	fake.SetSubscribeWindow(-1)
	fake.HoldRetired(true)
	fake.AddUser(twitchtest.User{ID: "1971641", Login: "streamer"})
	token := fake.IssueToken("1971641", time.Hour, "user:read:chat").Access
	old, welcome := dialFake(t, fake, "")
	id := welcome.Payload.Session.ID
	if status, _ := postSubscription(t, fake, token, `{"type":"stream.online","version":"1",`+
		`"condition":{"broadcaster_user_id":"1971641"},"transport":{"method":"websocket","session_id":"`+id+`"}}`); status != http.StatusAccepted {
		t.Fatalf("subscribe: %d", status)
	}
	fake.Reconnect(id)
	var msg struct {
		Payload struct {
			Session struct {
				ReconnectURL string `json:"reconnect_url"`
			} `json:"session"`
		} `json:"payload"`
	}
	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := old.ReadJSON(&msg); err != nil {
		t.Fatal(err)
	}
	// Before the new socket: notifications go to the old one.
	if fake.NotifyWithID("before", "1971641", "stream.online", map[string]any{}) != 1 {
		t.Fatal("nothing sent before the reconnect")
	}
	if m := readWire(t, old); m.Metadata.MessageID != "before" {
		t.Errorf("old socket got %+v, want notification before", m)
	}
	ws, _, err := websocket.DefaultDialer.Dial(msg.Payload.Session.ReconnectURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	readWire(t, ws) // welcome
	if s := fake.Sessions(); len(s) != 1 || !s[0].Connected || !s[0].Retired {
		t.Fatalf("sessions after the new welcome = %+v, want the old socket held", s)
	}
	fake.NotifyWithID("both", "1971641", "stream.online", map[string]any{})
	if fake.NotifyRetired("both", "1971641", "stream.online", map[string]any{}) != 1 {
		t.Fatal("the retired socket took nothing")
	}
	if m := readWire(t, ws); m.Metadata.MessageID != "both" {
		t.Errorf("new socket got %+v", m)
	}
	if m := readWire(t, old); m.Metadata.MessageID != "both" {
		t.Errorf("old socket got %+v", m)
	}
	if n := fake.ReleaseRetired(); n != 1 {
		t.Errorf("released %d retired sockets, want 1", n)
	}
	if code := closeCodeOf(t, old); code != twitchtest.CloseReconnectExpired {
		t.Errorf("old socket closed with %d, want 4004", code)
	}
}
