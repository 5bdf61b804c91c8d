package twitchtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
)

// helixDo sends one Helix request to the fake and decodes the answer into out.
func helixDo(t *testing.T, srv *twitchtest.Server, token, method, path string, body any, out any) int {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, srv.Endpoints().API+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Client-Id", srv.ClientID)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

type subList struct {
	Data []struct {
		ID, Status, Type string
		Condition        map[string]string
	} `json:"data"`
	Total      int `json:"total"`
	Pagination struct {
		Cursor string `json:"cursor"`
	} `json:"pagination"`
}

func TestEventSubSubscriptions(t *testing.T) {
	srv := twitchtest.New(t)
	app := srv.IssueToken("", time.Hour).Access
	user := srv.IssueToken("1001", time.Hour, "user:read:chat").Access
	webhook := func(broadcaster string) map[string]any {
		return map[string]any{"type": "stream.online", "version": "1",
			"condition": map[string]string{"broadcaster_user_id": broadcaster, "user_id": ""},
			"transport": map[string]string{"method": "webhook", "callback": "https://example.test/webhooks/twitch", "secret": "0123456789abcdef"}}
	}
	for _, b := range []string{"1", "2", "3"} {
		if code := helixDo(t, srv, app, "POST", "/eventsub/subscriptions", webhook(b), nil); code != http.StatusAccepted {
			t.Fatalf("create %s = %d", b, code)
		}
	}
	tests := []struct {
		name  string
		token string
		body  any
		want  int
	}{
		{"duplicate", app, webhook("1"), http.StatusConflict},
		{"webhook with a user token", user, webhook("4"), http.StatusUnauthorized},
		{"websocket with an app token", app, map[string]any{"type": "stream.online", "version": "1",
			"condition": map[string]string{"broadcaster_user_id": "1001"},
			"transport": map[string]string{"method": "websocket", "session_id": "x"}}, http.StatusUnauthorized},
		{"websocket on an unknown session", user, map[string]any{"type": "stream.online", "version": "1",
			"condition": map[string]string{"broadcaster_user_id": "1001"},
			"transport": map[string]string{"method": "websocket", "session_id": "nope"}}, http.StatusBadRequest},
		{"conduit that does not exist", app, map[string]any{"type": "stream.online", "version": "1",
			"condition": map[string]string{"broadcaster_user_id": "1001"},
			"transport": map[string]string{"method": "conduit", "conduit_id": "nope"}}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := helixDo(t, srv, tt.token, "POST", "/eventsub/subscriptions", tt.body, nil); code != tt.want {
				t.Fatalf("status = %d, want %d", code, tt.want)
			}
		})
	}

	// Pages of two, then the rest.
	var page1, page2 subList
	helixDo(t, srv, app, "GET", "/eventsub/subscriptions?first=2", nil, &page1)
	if len(page1.Data) != 2 || page1.Total != 3 || page1.Pagination.Cursor == "" {
		t.Fatalf("page 1 = %+v", page1)
	}
	if _, ok := page1.Data[0].Condition["user_id"]; ok {
		t.Errorf("empty condition field kept: %v", page1.Data[0].Condition)
	}
	helixDo(t, srv, app, "GET", "/eventsub/subscriptions?first=2&after="+page1.Pagination.Cursor, nil, &page2)
	if len(page2.Data) != 1 || page2.Pagination.Cursor != "" {
		t.Fatalf("page 2 = %+v", page2)
	}

	// Status filter and delete.
	if !srv.SetSubscriptionStatus(page2.Data[0].ID, "notification_failures_exceeded") {
		t.Fatal("unknown subscription")
	}
	var failed subList
	helixDo(t, srv, app, "GET", "/eventsub/subscriptions?status=notification_failures_exceeded", nil, &failed)
	if len(failed.Data) != 1 || failed.Data[0].ID != page2.Data[0].ID {
		t.Fatalf("status filter = %+v", failed)
	}
	if code := helixDo(t, srv, app, "DELETE", "/eventsub/subscriptions?id="+page2.Data[0].ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete = %d", code)
	}
	if code := helixDo(t, srv, app, "DELETE", "/eventsub/subscriptions?id="+page2.Data[0].ID, nil, nil); code != http.StatusNotFound {
		t.Fatalf("second delete = %d, want 404", code)
	}
	if got := len(srv.Subscriptions()); got != 2 {
		t.Fatalf("subscriptions left = %d, want 2", got)
	}
}

func TestConduits(t *testing.T) {
	srv := twitchtest.New(t)
	app := srv.IssueToken("", time.Hour).Access
	var created struct {
		Data []struct {
			ID         string `json:"id"`
			ShardCount int    `json:"shard_count"`
		} `json:"data"`
	}
	if code := helixDo(t, srv, app, "POST", "/eventsub/conduits", map[string]int{"shard_count": 1}, &created); code != http.StatusOK {
		t.Fatalf("create = %d", code)
	}
	id := created.Data[0].ID
	if code := helixDo(t, srv, app, "PATCH", "/eventsub/conduits", map[string]any{"id": id, "shard_count": 3}, &created); code != http.StatusOK || created.Data[0].ShardCount != 3 {
		t.Fatalf("update = %d %+v", code, created)
	}
	var shards struct {
		Data   []map[string]any `json:"data"`
		Errors []map[string]any `json:"errors"`
	}
	// A session the WebSocket part does not know is refused per shard.
	code := helixDo(t, srv, app, "PATCH", "/eventsub/conduits/shards", map[string]any{"conduit_id": id,
		"shards": []any{map[string]any{"id": "0", "transport": map[string]string{"method": "websocket", "session_id": "nope"}},
			map[string]any{"id": "1", "transport": map[string]string{"method": "webhook", "callback": "https://example.test/cb", "secret": "0123456789abcdef"}}}}, &shards)
	if code != http.StatusAccepted || len(shards.Data) != 1 || len(shards.Errors) != 1 {
		t.Fatalf("update shards = %d %+v", code, shards)
	}
	helixDo(t, srv, app, "GET", "/eventsub/conduits/shards?conduit_id="+id+"&status=enabled", nil, &shards)
	if len(shards.Data) != 1 || shards.Data[0]["id"] != "1" {
		t.Fatalf("enabled shards = %+v", shards.Data)
	}
	sub := map[string]any{"type": "channel.chat.message", "version": "1",
		"condition": map[string]string{"broadcaster_user_id": "1001", "user_id": "2002"},
		"transport": map[string]string{"method": "conduit", "conduit_id": id}}
	if code := helixDo(t, srv, app, "POST", "/eventsub/subscriptions", sub, nil); code != http.StatusAccepted {
		t.Fatalf("conduit subscription = %d", code)
	}
	user := srv.IssueToken("1001", time.Hour).Access
	if code := helixDo(t, srv, user, "GET", "/eventsub/conduits", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("conduits with a user token = %d, want 401", code)
	}
}
