package twitch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/schemas"
)

// get fetches a page of ours through the browser, returning status and body.
func (b *browser) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// setStateCookie gives the browser a Twitch state cookie for the site at
// base, as if /connect/twitch had handed it state.
func (b *browser) setStateCookie(t *testing.T, base, state string) {
	t.Helper()
	u, err := url.Parse(base + "/connect/twitch/callback")
	if err != nil {
		t.Fatal(err)
	}
	b.client.Jar.SetCookies(u, []*http.Cookie{{Name: "waddlebot_twitch_oauth_state", Value: state, Path: "/connect/"}})
}

// callbackURL is the visit that came back to our callback.
func (b *browser) callbackURL(t *testing.T) string {
	t.Helper()
	for _, u := range b.visited {
		if strings.Contains(u, "/connect/twitch/callback") {
			return u
		}
	}
	t.Fatalf("the browser never came back to the callback: %v", b.visited)
	return ""
}

func TestConnectFlow(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		kind   string
		scopes []string
	}{
		{name: "broadcaster", path: "/connect/twitch", kind: twitch.KindBroadcaster, scopes: eventsub.BroadcasterScopes()},
		{name: "bot", path: "/connect/twitch/bot", kind: twitch.KindBot, scopes: eventsub.BotScopes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newConnectEnv(t, true)
			// A display name that would be markup if it were not escaped.
			user := twitchtest.User{ID: "3001", Login: "penguin", DisplayName: "Pen<b>guin</b>"}
			e.fake.AddUser(user)
			e.fake.NextAuthorize(user.ID)

			b := newBrowser()
			status, body := b.get(t, e.web.URL+tt.path)
			if status != http.StatusOK || !strings.Contains(body, "Connected Pen&lt;b&gt;guin&lt;/b&gt; — you can close this tab") {
				t.Fatalf("final page %d: %s", status, body)
			}

			// What the browser was sent to Twitch with.
			asked := e.fake.AuthorizeRequests()
			if len(asked) != 1 {
				t.Fatalf("authorize requests = %v", asked)
			}
			q := asked[0]
			for key, want := range map[string]string{
				"response_type": "code", "client_id": e.fake.ClientID, "force_verify": "true",
				"redirect_uri": e.web.URL + "/connect/twitch/callback", "scope": strings.Join(tt.scopes, " "),
			} {
				if q.Get(key) != want {
					t.Errorf("authorize %s = %q, want %q", key, q.Get(key), want)
				}
			}
			if len(q.Get("state")) < 40 {
				t.Errorf("state %q is too short to be 32 random bytes", q.Get("state"))
			}

			a := e.account(t, user.ID)
			if a.Kind != tt.kind || a.Status != twitch.StatusConnected || a.Login != user.Login ||
				a.DisplayName != user.DisplayName || !sameSet(a.Scopes, tt.scopes) {
				t.Fatalf("account = %+v", a)
			}
			if change := e.nextNotice(t); change != (twitch.AccountChange{UserID: user.ID, Kind: tt.kind, Status: twitch.StatusConnected}) {
				t.Fatalf("notice = %+v", change)
			}

			// The token works, and is stored encrypted.
			live := e.fake.TokensOf(user.ID)
			if len(live) != 1 {
				t.Fatalf("live tokens = %+v", live)
			}
			got, err := e.tokens.UserToken(ctx, user.ID)
			if err != nil || got != live[0].Access {
				t.Fatalf("UserToken = %q, %v; want %q", got, err, live[0].Access)
			}
			var sealed []byte
			if err := e.st.Pool().QueryRow(ctx, `SELECT ciphertext FROM secrets WHERE owner = 'twitch' AND name = $1`,
				"token."+user.ID).Scan(&sealed); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(sealed, []byte(live[0].Access)) || bytes.Contains(sealed, []byte(live[0].Refresh)) {
				t.Fatal("the token is stored in plain text")
			}

			// A broadcaster's channel exists for the router; a bot has none.
			var channels int
			if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM channels WHERE platform = $1 AND channel_id = $2`,
				schemas.PlatformTwitch, user.ID).Scan(&channels); err != nil {
				t.Fatal(err)
			}
			if want := map[string]int{twitch.KindBroadcaster: 1, twitch.KindBot: 0}[tt.kind]; channels != want {
				t.Fatalf("channel rows = %d, want %d", channels, want)
			}

			// The state was good once, even from the browser that holds its
			// cookie again.
			callback := b.callbackURL(t)
			cu, _ := url.Parse(callback)
			b.setStateCookie(t, e.web.URL, cu.Query().Get("state"))
			status, body = b.get(t, callback)
			if status != http.StatusBadRequest || !strings.Contains(body, "expired or already used") {
				t.Fatalf("reused state: %d %s", status, body)
			}

			// The status page lists the account, without its token.
			status, body = b.get(t, e.web.URL+"/connect/twitch/status")
			if status != http.StatusOK || strings.Contains(body, live[0].Access) || strings.Contains(body, live[0].Refresh) {
				t.Fatalf("status page %d: %s", status, body)
			}
			var listed []map[string]any
			if err := json.Unmarshal([]byte(body), &listed); err != nil || len(listed) != 1 ||
				listed[0]["user_id"] != user.ID || listed[0]["kind"] != tt.kind || listed[0]["status"] != twitch.StatusConnected {
				t.Fatalf("status = %s (%v)", body, err)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestConnectRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *connectEnv, b *browser) string // returns the URL the browser opens
		wantStatus int
		wantText   string
	}{
		{
			name: "declined",
			setup: func(_ *testing.T, e *connectEnv, _ *browser) string {
				e.fake.NextDecline()
				return e.web.URL + "/connect/twitch"
			},
			wantStatus: http.StatusOK, wantText: "You declined",
		},
		{
			name: "unknown state",
			setup: func(t *testing.T, e *connectEnv, b *browser) string {
				b.setStateCookie(t, e.web.URL, "made-up")
				return e.web.URL + "/connect/twitch/callback?" + url.Values{"code": {"abc"}, "state": {"made-up"}}.Encode()
			},
			wantStatus: http.StatusBadRequest, wantText: "expired or already used",
		},
		{
			name: "no state",
			setup: func(_ *testing.T, e *connectEnv, _ *browser) string {
				return e.web.URL + "/connect/twitch/callback?code=abc"
			},
			wantStatus: http.StatusBadRequest, wantText: "not started in this browser",
		},
		{
			name: "expired state",
			setup: func(t *testing.T, e *connectEnv, b *browser) string {
				state, err := e.st.CreateOAuthState(ctx, schemas.PlatformTwitch, twitch.KindBroadcaster)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.st.Pool().Exec(ctx, `UPDATE oauth_states SET created_at = now() - interval '11 minutes'
					WHERE state = $1`, state); err != nil {
					t.Fatal(err)
				}
				b.setStateCookie(t, e.web.URL, state)
				return e.web.URL + "/connect/twitch/callback?" + url.Values{"code": {"abc"}, "state": {state}}.Encode()
			},
			wantStatus: http.StatusBadRequest, wantText: "expired or already used",
		},
		{
			name: "state from another browser",
			setup: func(t *testing.T, e *connectEnv, _ *browser) string {
				// A live state, but this browser holds no cookie for it (a
				// victim lured to an attacker's callback URL).
				state, err := e.st.CreateOAuthState(ctx, schemas.PlatformTwitch, twitch.KindBroadcaster)
				if err != nil {
					t.Fatal(err)
				}
				return e.web.URL + "/connect/twitch/callback?" + url.Values{"code": {"abc"}, "state": {state}}.Encode()
			},
			wantStatus: http.StatusBadRequest, wantText: "not started in this browser",
		},
		{
			name: "missing scope",
			setup: func(_ *testing.T, e *connectEnv, _ *browser) string {
				e.fake.NextAuthorize(tokPenguin.ID, eventsub.BroadcasterScopes()[1:]...)
				return e.web.URL + "/connect/twitch"
			},
			wantStatus: http.StatusBadRequest, wantText: "<li>" + eventsub.BroadcasterScopes()[0] + "</li>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConnectEnv(t, false)
			e.fake.AddUser(tokPenguin)
			b := newBrowser()
			status, body := b.get(t, tt.setup(t, e, b))
			if status != tt.wantStatus || !strings.Contains(body, tt.wantText) {
				t.Fatalf("page %d, want %d with %q: %s", status, tt.wantStatus, tt.wantText, body)
			}
			if _, err := e.accounts.Account(ctx, tokPenguin.ID); !errors.Is(err, twitch.ErrNotConnected) {
				t.Fatalf("account after a refused connect: %v", err)
			}
			// A token we will not use is given back.
			if live := e.fake.TokensOf(tokPenguin.ID); len(live) != 0 {
				t.Fatalf("tokens left at Twitch: %+v", live)
			}
		})
	}
}

func TestOAuthNeedsMatchingRedirect(t *testing.T) {
	e := newConnectEnv(t, false)
	h, err := twitch.NewHelix("id", "secret", "https://elsewhere.example/callback", e.fake.Endpoints(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := twitch.NewOAuth(twitch.OAuthConfig{Helix: h, Store: e.accounts, PublicURL: "https://bot.example"}); err == nil {
		t.Fatal("NewOAuth accepted a Helix redirect URI that is not its callback")
	}
}
