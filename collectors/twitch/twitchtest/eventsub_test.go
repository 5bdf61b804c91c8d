package twitchtest_test

import (
	"encoding/json"
	"errors"
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
