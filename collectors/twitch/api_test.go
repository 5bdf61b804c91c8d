package twitch_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// serveAPI runs ServeAPI against the fake until the test ends and returns
// a function that sends one request and decodes the answer.
func serveAPI(t *testing.T) func(op string, body []byte) schemas.APIResponse {
	t.Helper()
	return serveAPIOn(t, newSenderEnv(t))
}

// serveAPIOn is serveAPI on a given fake.
func serveAPIOn(t *testing.T, env *senderEnv) func(op string, body []byte) schemas.APIResponse {
	t.Helper()
	nenv := natstest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- twitch.ServeAPI(ctx, twitch.APIConfig{Conn: nenv.Conn, Helix: env.helix, Tokens: env.tokens,
			Logger: slog.New(slog.NewTextHandler(env.logs, nil))})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAPI = %v", err)
		}
	})
	client := natstest.Connect(t, nenv.Server)
	return func(op string, body []byte) schemas.APIResponse {
		t.Helper()
		subject := schemas.APISubject(schemas.PlatformTwitch, op)
		var msg *nats.Msg
		var err error
		// ServeAPI subscribes in its own goroutine: until it has, nobody answers.
		for range 500 {
			msg, err = client.NC.Request(subject, body, 5*time.Second)
			if !errors.Is(err, nats.ErrNoResponders) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("request %s: %v", subject, err)
		}
		var resp schemas.APIResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			t.Fatalf("undecodable answer %s: %v", msg.Data, err)
		}
		if err := resp.Validate(); err != nil {
			t.Fatalf("invalid answer %s: %v", msg.Data, err)
		}
		return resp
	}
}

func apiRequest(t *testing.T, op string, args map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: "req-1", Operation: op, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServeAPI(t *testing.T) {
	ask := serveAPI(t)
	tests := []struct {
		name      string
		op        string
		body      []byte
		wantData  string
		wantError string
	}{
		{name: "user by login", op: twitch.OpUserByLogin,
			body:     apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "Friend"}),
			wantData: `{"id":"3003","login":"friend","display_name":"Friend"}`},
		{name: "unknown login", op: twitch.OpUserByLogin,
			body: apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "nobody"}), wantError: "not_found"},
		{name: "user by login without login", op: twitch.OpUserByLogin,
			body: apiRequest(t, twitch.OpUserByLogin, nil), wantError: "invalid"},
		{name: "channel info by id", op: twitch.OpChannelInfo,
			body:     apiRequest(t, twitch.OpChannelInfo, map[string]string{"broadcaster_id": "1001"}),
			wantData: `{"broadcaster_id":"1001","login":"streamer","display_name":"Streamer","category":"Science & Technology","title":"Building a bot"}`},
		{name: "channel info by login", op: twitch.OpChannelInfo,
			body:     apiRequest(t, twitch.OpChannelInfo, map[string]string{"login": "friend"}),
			wantData: `{"broadcaster_id":"3003","login":"friend","display_name":"Friend","category":"Art","title":"Painting"}`},
		{name: "unknown channel", op: twitch.OpChannelInfo,
			body: apiRequest(t, twitch.OpChannelInfo, map[string]string{"broadcaster_id": "999"}), wantError: "not_found"},
		{name: "not JSON", op: twitch.OpChannelInfo, body: []byte("hello"), wantError: "invalid"},
		{name: "operation differs from subject", op: twitch.OpChannelInfo,
			body: apiRequest(t, twitch.OpUserByLogin, map[string]string{"login": "friend"}), wantError: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(tt.op, tt.body)
			if tt.wantError != "" {
				if resp.Error == nil || resp.Error.Code != tt.wantError {
					t.Fatalf("answer = %+v (data %s), want error %s", resp.Error, resp.Data, tt.wantError)
				}
				return
			}
			if resp.Error != nil {
				t.Fatalf("error = %v", resp.Error)
			}
			if resp.ID != "req-1" {
				t.Errorf("id = %q, want the request's", resp.ID)
			}
			var got, want any
			_ = json.Unmarshal(resp.Data, &got)
			_ = json.Unmarshal([]byte(tt.wantData), &want)
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Fatalf("data = %s, want %s", resp.Data, tt.wantData)
			}
		})
	}
}
