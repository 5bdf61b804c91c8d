package discordtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
)

// restDo sends a request to the fake with the bot token.
func restDo(t *testing.T, srv *discordtest.Server, method, path string, body any) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.APIURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bot "+srv.BotToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp, out
}

func TestRESTRateLimitHeadersPerBucket(t *testing.T) {
	srv := discordtest.New(t)
	srv.SetBucketLimit(2, time.Hour)
	first, _ := restDo(t, srv, "POST", "/channels/1/messages", map[string]any{"content": "a"})
	second, _ := restDo(t, srv, "POST", "/channels/1/messages", map[string]any{"content": "b"})
	other, _ := restDo(t, srv, "POST", "/channels/2/messages", map[string]any{"content": "c"})
	me, _ := restDo(t, srv, "GET", "/users/@me", nil)
	for name, resp := range map[string]*http.Response{"first": first, "second": second, "other": other, "me": me} {
		for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Reset-After", "X-RateLimit-Bucket"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: no %s", name, h)
			}
		}
	}
	if first.Header.Get("X-RateLimit-Remaining") != "1" || second.Header.Get("X-RateLimit-Remaining") != "0" ||
		other.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Errorf("remaining %s, %s, %s; want 1, 0 and 1 (channels have their own buckets)",
			first.Header.Get("X-RateLimit-Remaining"), second.Header.Get("X-RateLimit-Remaining"), other.Header.Get("X-RateLimit-Remaining"))
	}
	if first.Header.Get("X-RateLimit-Bucket") == me.Header.Get("X-RateLimit-Bucket") {
		t.Error("two routes share a bucket id")
	}
	third, body := restDo(t, srv, "POST", "/channels/1/messages", map[string]any{"content": "c"})
	if third.StatusCode != http.StatusTooManyRequests || body["retry_after"] == nil || third.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d %v", third.StatusCode, body)
	}
	if n := len(srv.Messages()); n != 3 {
		t.Fatalf("messages = %d, want 3 (the limited one refused)", n)
	}
}

func TestRESTRateLimitNext(t *testing.T) {
	tests := []struct {
		name   string
		global bool
	}{{name: "route"}, {name: "global", global: true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := discordtest.New(t)
			srv.RateLimitNext(1, 1500*time.Millisecond, tt.global)
			resp, body := restDo(t, srv, "POST", "/channels/1/messages", map[string]any{"content": "a"})
			if resp.StatusCode != http.StatusTooManyRequests || body["retry_after"] != 1.5 || body["global"] != tt.global ||
				resp.Header.Get("Retry-After") != "2" {
				t.Fatalf("429 = %d %v Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
			}
			if got := resp.Header.Get("X-RateLimit-Global") == "true"; got != tt.global {
				t.Errorf("X-RateLimit-Global %v, want %v", got, tt.global)
			}
			if tt.global && resp.Header.Get("X-RateLimit-Bucket") != "" {
				t.Error("a global 429 carries a route bucket")
			}
			if !tt.global && resp.Header.Get("X-RateLimit-Remaining") != "0" {
				t.Error("a route 429 does not show the bucket spent")
			}
			if resp, _ := restDo(t, srv, "POST", "/channels/1/messages", map[string]any{"content": "a"}); resp.StatusCode != http.StatusOK {
				t.Fatalf("after the 429: %d", resp.StatusCode)
			}
		})
	}
}

func TestRESTCreateMessageValidation(t *testing.T) {
	tests := []struct {
		name   string
		body   map[string]any
		status int
	}{
		{name: "ok", body: map[string]any{"content": "hi", "nonce": strings.Repeat("n", 25)}, status: 200},
		{name: "empty", body: map[string]any{"content": ""}, status: 400},
		{name: "too long", body: map[string]any{"content": strings.Repeat("é", discordtest.MaxContent+1)}, status: 400},
		{name: "longest", body: map[string]any{"content": strings.Repeat("é", discordtest.MaxContent)}, status: 200},
		{name: "nonce too long", body: map[string]any{"content": "hi", "nonce": strings.Repeat("n", 26)}, status: 400},
		{name: "integer nonce", body: map[string]any{"content": "hi", "nonce": 12345}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := discordtest.New(t)
			if resp, body := restDo(t, srv, "POST", "/channels/1/messages", tt.body); resp.StatusCode != tt.status {
				t.Fatalf("status %d %v, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
}

func TestRESTEnforceNonce(t *testing.T) {
	srv := discordtest.New(t)
	msg := map[string]any{"content": "once", "nonce": "abc", "enforce_nonce": true}
	_, first := restDo(t, srv, "POST", "/channels/1/messages", msg)
	_, again := restDo(t, srv, "POST", "/channels/1/messages", msg)
	if first["id"] == nil || first["id"] != again["id"] {
		t.Fatalf("ids %v and %v, want the same message", first["id"], again["id"])
	}
	unenforced := map[string]any{"content": "twice", "nonce": "xyz"}
	restDo(t, srv, "POST", "/channels/1/messages", unenforced)
	restDo(t, srv, "POST", "/channels/1/messages", unenforced)
	if n := len(srv.Messages()); n != 3 {
		t.Fatalf("messages = %d, want 3 (a nonce without enforce_nonce does not deduplicate)", n)
	}
}

func TestRESTAuth(t *testing.T) {
	srv := discordtest.New(t)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.APIURL()+"/users/@me", nil)
	req.Header.Set("Authorization", "Bot wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	resp, me := restDo(t, srv, "GET", "/users/@me", nil)
	if resp.StatusCode != 200 || me["id"] != srv.AppID || me["bot"] != true {
		t.Fatalf("@me = %d %v", resp.StatusCode, me)
	}
}

func TestRESTGuildsAndMembers(t *testing.T) {
	srv := discordtest.New(t)
	srv.AddGuild(discordtest.Guild{ID: "10", Name: "Pond", OwnerID: "11", Roles: []discordtest.Role{{ID: "10", Name: "@everyone"}}})
	srv.AddRole("10", discordtest.Role{ID: "12", Name: "mods", Permissions: 8})
	srv.AddMember("10", discordtest.Member{User: discordtest.User{ID: "13", Username: "pingu"}, Roles: []string{"12"}})
	_, g := restDo(t, srv, "GET", "/guilds/10", nil)
	roles, _ := g["roles"].([]any)
	if g["owner_id"] != "11" || len(roles) != 2 || roles[1].(map[string]any)["permissions"] != "8" {
		t.Fatalf("guild = %v", g)
	}
	_, m := restDo(t, srv, "GET", "/guilds/10/members/13", nil)
	if m["user"].(map[string]any)["id"] != "13" || m["roles"].([]any)[0] != "12" {
		t.Fatalf("member = %v", m)
	}
	if resp, _ := restDo(t, srv, "GET", "/guilds/10/members/99", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown member: %d", resp.StatusCode)
	}
}

func TestRESTGatewayBot(t *testing.T) {
	srv := discordtest.New(t)
	srv.SetShards(3)
	_, body := restDo(t, srv, "GET", "/gateway/bot", nil)
	if body["url"] != srv.GatewayURL() || body["shards"] != 3.0 || body["session_start_limit"] == nil {
		t.Fatalf("gateway/bot = %v", body)
	}
}

func TestRESTOAuthInstall(t *testing.T) {
	srv := discordtest.New(t)
	srv.AddGuild(discordtest.Guild{ID: "10", Name: "Pond", OwnerID: "11"})
	srv.NextAuthorize("10")
	const redirect = "https://waddlebot.example/connect/discord/callback"
	q := url.Values{"client_id": {srv.AppID}, "response_type": {"code"}, "scope": {"bot applications.commands"},
		"permissions": {"2048"}, "redirect_uri": {redirect}, "state": {"st8"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(srv.AuthorizeURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(back.String(), redirect) {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if back.Query().Get("state") != "st8" || back.Query().Get("guild_id") != "10" || back.Query().Get("code") == "" {
		t.Fatalf("redirect query = %v", back.Query())
	}
	exchange := func() (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirect},
			"client_id": {srv.AppID}, "client_secret": {srv.ClientSecret}}
		resp, err := http.PostForm(srv.APIURL()+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, tok := exchange()
	guild, _ := tok["guild"].(map[string]any)
	if status != 200 || tok["access_token"] == nil || guild["id"] != "10" || guild["owner_id"] != "11" {
		t.Fatalf("token = %d %v", status, tok)
	}
	if status, body := exchange(); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("second use of the code: %d %v", status, body)
	}
}

func TestRESTInteractionWebhooks(t *testing.T) {
	srv := discordtest.New(t)
	path := "/webhooks/" + srv.AppID + "/tok"
	if resp, _ := restDo(t, srv, "POST", path, map[string]any{"content": "early"}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("follow-up before the interaction was answered: %d", resp.StatusCode)
	}
	if resp, _ := restDo(t, srv, "POST", "/interactions/5/tok/callback", map[string]any{"type": 5, "data": map[string]any{"flags": 64}}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("callback: %d", resp.StatusCode)
	}
	if resp, _ := restDo(t, srv, "POST", "/interactions/5/tok/callback", map[string]any{"type": 5}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("second callback: %d, want 400 (already acknowledged)", resp.StatusCode)
	}
	restDo(t, srv, "PATCH", path+"/messages/@original", map[string]any{"content": "one"})
	restDo(t, srv, "POST", path, map[string]any{"content": "two", "flags": 64})
	cbs, ups := srv.Callbacks(), srv.Followups()
	if len(cbs) != 1 || cbs[0].Type != 5 || cbs[0].Flags != 64 {
		t.Fatalf("callbacks = %+v", cbs)
	}
	if len(ups) != 2 || ups[0].Kind != discordtest.WebhookEditOriginal || ups[1].Kind != discordtest.WebhookFollowup || ups[1].Flags != 64 {
		t.Fatalf("webhook messages = %+v", ups)
	}
}
