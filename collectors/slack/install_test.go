package slack

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/logging"
)

// instRig is the install routes over the fake's oauth.v2.access.
type instRig struct {
	*sndRig
	mux *http.ServeMux
	// cookies are what the last /connect/slack set: the browser's jar.
	cookies []*http.Cookie
}

func instNewRig(t *testing.T) *instRig {
	t.Helper()
	rig := sndNewRig(t, "")
	in, err := NewInstall(InstallConfig{ClientID: "cid", ClientSecret: "csecret", PublicURL: "https://bot.example/",
		APIURL: rig.fake.apiURL(), AuthorizeURL: "https://slack.example/oauth/v2/authorize",
		Workspaces: rig.workspaces, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	in.Mount(mux)
	return &instRig{sndRig: rig, mux: mux}
}

func (r *instRig) get(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	return r.getWith(t, target, r.cookies)
}

// getWith is a GET from a browser holding cookies.
func (r *instRig) getWith(t *testing.T, target string, cookies []*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	r.mux.ServeHTTP(rec, req)
	return rec
}

// connect starts an install and returns the state Slack would send back.
func (r *instRig) connect(t *testing.T) string {
	t.Helper()
	rec := r.getWith(t, "/connect/slack", nil)
	if rec.Code != http.StatusFound {
		t.Fatalf("GET /connect/slack = %d, want 302", rec.Code)
	}
	r.cookies = rec.Result().Cookies()
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if loc.Host != "slack.example" || loc.Path != "/oauth/v2/authorize" || q.Get("client_id") != "cid" ||
		q.Get("redirect_uri") != "https://bot.example/connect/slack/callback" || q.Get("state") == "" {
		t.Fatalf("redirected to %s", loc)
	}
	scopes := strings.Split(q.Get("scope"), ",")
	for _, want := range []string{"app_mentions:read", "channels:history", "chat:write", "commands", "users:read"} {
		if !strings.Contains(","+q.Get("scope")+",", ","+want+",") {
			t.Errorf("scope %v lacks %s", scopes, want)
		}
	}
	return q.Get("state")
}

const instGranted = `{"ok":true,"access_token":"xoxb-installed","token_type":"bot","scope":"chat:write,commands",
	"bot_user_id":"UBOT","app_id":"A1","team":{"id":"T7","name":"Penguins <&>"},"authed_user":{"id":"U1"}}`

func TestInstallEndToEnd(t *testing.T) {
	rig := instNewRig(t)
	rig.fake.answer("oauth.v2.access", sndAnswer{Status: http.StatusOK, Body: instGranted})
	state := rig.connect(t)

	rec := rig.get(t, "/connect/slack/callback?code=the-code&state="+url.QueryEscape(state))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Installed in Penguins &lt;&amp;&gt;") {
		t.Fatalf("callback = %d %s", rec.Code, rec.Body)
	}
	calls := rig.fake.seen("oauth.v2.access")
	if len(calls) != 1 {
		t.Fatalf("oauth.v2.access calls = %d, want 1", len(calls))
	}
	if f := calls[0].Form; f.Get("code") != "the-code" || f.Get("client_id") != "cid" || f.Get("client_secret") != "csecret" ||
		f.Get("redirect_uri") != "https://bot.example/connect/slack/callback" {
		t.Errorf("oauth.v2.access form = %v", f)
	}
	ctx := t.Context()
	if token, err := rig.workspaces.BotToken(ctx, "T7"); token != "xoxb-installed" || err != nil {
		t.Errorf("BotToken(T7) = %q, %v", token, err)
	}
	if user, err := rig.workspaces.BotUserID(ctx, "T7"); user != "UBOT" || err != nil {
		t.Errorf("BotUserID(T7) = %q, %v", user, err)
	}
	ws, err := rig.workspaces.Workspace(ctx, "T7")
	// InstalledBy lets the portal offer the workspace to whoever installed it.
	if err != nil || ws.TeamName != "Penguins <&>" || ws.Status != StatusInstalled || ws.InstalledBy != "U1" {
		t.Errorf("workspace = %+v, %v", ws, err)
	}
	// The token is stored encrypted, not in the workspace row.
	var plain int
	if err := rig.workspaces.st.Pool().QueryRow(ctx,
		`SELECT count(*) FROM secrets WHERE owner = 'slack' AND position('xoxb-installed' in encode(ciphertext, 'escape')) > 0`).Scan(&plain); err != nil || plain != 0 {
		t.Errorf("plaintext token rows = %d, %v", plain, err)
	}

	// The state is good once.
	rec = rig.get(t, "/connect/slack/callback?code=the-code&state="+url.QueryEscape(state))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "already used") {
		t.Errorf("reused state: %d %s", rec.Code, rec.Body)
	}
	if n := len(rig.fake.seen("oauth.v2.access")); n != 1 {
		t.Errorf("oauth.v2.access calls after a reused state = %d, want 1", n)
	}
}

func TestInstallCallbackRefusals(t *testing.T) {
	tests := []struct {
		name     string
		query    func(state string) string
		answer   *sndAnswer
		setup    func(t *testing.T, rig *instRig, state string)
		wantCode int
		wantText string
	}{
		{name: "unknown state", query: func(string) string { return "code=c&state=forged" },
			wantCode: http.StatusBadRequest, wantText: "Link expired"},
		{name: "no state", query: func(string) string { return "code=c" },
			wantCode: http.StatusBadRequest, wantText: "Link expired"},
		{name: "expired state", query: func(s string) string { return "code=c&state=" + url.QueryEscape(s) },
			setup: func(t *testing.T, rig *instRig, state string) {
				if _, err := rig.workspaces.st.Pool().Exec(t.Context(),
					`UPDATE oauth_states SET created_at = now() - interval '11 minutes' WHERE state = $1`, state); err != nil {
					t.Fatal(err)
				}
			}, wantCode: http.StatusBadRequest, wantText: "Link expired"},
		{name: "declined on Slack", query: func(s string) string { return "error=access_denied&state=" + url.QueryEscape(s) },
			wantCode: http.StatusOK, wantText: "access_denied"},
		{name: "no code", query: func(s string) string { return "state=" + url.QueryEscape(s) },
			wantCode: http.StatusBadRequest, wantText: "no authorization code"},
		{name: "code refused", query: func(s string) string { return "code=c&state=" + url.QueryEscape(s) },
			answer:   &sndAnswer{Status: http.StatusOK, Body: `{"ok":false,"error":"invalid_code"}`},
			wantCode: http.StatusBadGateway, wantText: "invalid_code"},
		{name: "user token instead of a bot token", query: func(s string) string { return "code=c&state=" + url.QueryEscape(s) },
			answer: &sndAnswer{Status: http.StatusOK, Body: `{"ok":true,"access_token":"xoxp-user","token_type":"user",
				"team":{"id":"T7","name":"Penguins"},"authed_user":{"id":"U1"}}`},
			wantCode: http.StatusBadRequest, wantText: "no bot token"},
		{name: "organization install", query: func(s string) string { return "code=c&state=" + url.QueryEscape(s) },
			answer: &sndAnswer{Status: http.StatusOK, Body: `{"ok":true,"access_token":"xoxb-org","token_type":"bot",
				"is_enterprise_install":true,"enterprise":{"id":"E1","name":"Org"},"team":null}`},
			wantCode: http.StatusBadRequest, wantText: "not an organization"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := instNewRig(t)
			if tt.answer != nil {
				rig.fake.answer("oauth.v2.access", *tt.answer)
			}
			state := rig.connect(t)
			if tt.setup != nil {
				tt.setup(t, rig, state)
			}
			rec := rig.get(t, "/connect/slack/callback?"+tt.query(state))
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantText) {
				t.Fatalf("callback = %d %s; want %d mentioning %q", rec.Code, rec.Body, tt.wantCode, tt.wantText)
			}
			var n int
			if err := rig.workspaces.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM slack_workspaces`).Scan(&n); err != nil || n != 0 {
				t.Errorf("workspaces saved = %d, %v; want none", n, err)
			}
			if _, err := rig.workspaces.BotToken(t.Context(), "T7"); !errors.Is(err, ErrNotInstalled) {
				t.Errorf("BotToken = %v, want ErrNotInstalled", err)
			}
		})
	}
}

func TestInstallRoutesAreGetOnly(t *testing.T) {
	rig := instNewRig(t)
	for _, path := range []string{"/connect/slack", "/connect/slack/callback"} {
		rec := httptest.NewRecorder()
		rig.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", path, rec.Code)
		}
	}
}

func TestInstallStateIsTiedToTheBrowser(t *testing.T) {
	rig := instNewRig(t)
	rig.fake.answer("oauth.v2.access", sndAnswer{Status: http.StatusOK, Body: instGranted})
	state := rig.connect(t)
	var cookie *http.Cookie
	for _, c := range rig.cookies {
		if c.Name == stateCookie {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != state || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode ||
		!cookie.Secure || cookie.Path != "/connect/" || cookie.MaxAge <= 0 {
		t.Fatalf("state cookie = %+v, want the state, HttpOnly, SameSite=Lax, Secure (PublicURL is https)", cookie)
	}
	mine := rig.cookies
	other := instNewRigCookiesOf(t, rig)

	callback := "/connect/slack/callback?code=the-code&state=" + url.QueryEscape(state)
	tests := []struct {
		name    string
		cookies []*http.Cookie
	}{
		{name: "a browser without the cookie", cookies: nil},
		{name: "a browser that started another install", cookies: other},
	}
	for _, tt := range tests {
		rec := rig.getWith(t, callback, tt.cookies)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not started in this browser") {
			t.Fatalf("%s: callback = %d %s, want 400", tt.name, rec.Code, rec.Body)
		}
	}
	if n := len(rig.fake.seen("oauth.v2.access")); n != 0 {
		t.Fatalf("oauth.v2.access called %d times for callbacks from other browsers", n)
	}
	// The browser that started the install still completes it.
	rec := rig.getWith(t, callback, mine)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Installed in") {
		t.Fatalf("callback from the right browser = %d %s", rec.Code, rec.Body)
	}
	cleared := false
	for _, c := range rec.Result().Cookies() {
		cleared = cleared || (c.Name == stateCookie && c.MaxAge < 0)
	}
	if !cleared {
		t.Error("the state cookie was not cleared after the callback")
	}
}

// instNewRigCookiesOf starts a second install on rig, as another browser,
// and returns that browser's cookies (rig's own jar is kept).
func instNewRigCookiesOf(t *testing.T, rig *instRig) []*http.Cookie {
	t.Helper()
	mine := rig.cookies
	rig.connect(t)
	other := rig.cookies
	rig.cookies = mine
	return other
}
