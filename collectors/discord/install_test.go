package discord_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

type instEnv struct {
	fake  *discordtest.Server
	st    *store.Store
	srv   *httptest.Server
	hops  []*url.URL // every URL the browser visited
	agent *http.Client
}

func instStart(t *testing.T) *instEnv {
	t.Helper()
	e := &instEnv{fake: discordtest.New(t), st: storetest.New(t)}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	in, err := discord.NewInstall(discord.InstallConfig{AppID: e.fake.AppID, ClientSecret: e.fake.ClientSecret,
		PublicURL: e.srv.URL, Endpoints: discord.Endpoints{API: e.fake.APIURL()}, Permissions: 1099511696384,
		Store: e.st, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	in.Mount(mux)
	jar, _ := cookiejar.New(nil)
	e.agent = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		e.hops = append(e.hops, req.URL)
		return nil
	}}
	return e
}

func (e *instEnv) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := e.agent.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInstallRecordsTheGuild(t *testing.T) {
	e := instStart(t)
	e.fake.AddGuild(gwGuild)
	e.fake.NextAuthorize(gwGuildID)
	e.fake.NextInstaller(discordtest.User{ID: "410000000000000777", Username: "streamer"})

	status, body := e.get(t, e.srv.URL+"/connect/discord")
	if status != http.StatusOK || !strings.Contains(body, "Penguins") {
		t.Fatalf("install = %d %q", status, body)
	}
	if len(e.hops) < 2 {
		t.Fatalf("redirects = %v", e.hops)
	}
	authorize := e.hops[0]
	q := authorize.Query()
	if authorize.Path != "/oauth2/authorize" || q.Get("client_id") != e.fake.AppID || q.Get("scope") != "bot applications.commands identify" ||
		q.Get("permissions") != "1099511696384" || q.Get("state") == "" || !strings.Contains(authorize.RawQuery, "scope=bot%20applications.commands%20identify") {
		t.Errorf("authorize URL = %s", authorize)
	}

	// The installer is recorded, so the portal can offer them the server.
	var community, name, installer string
	err := e.st.Pool().QueryRow(t.Context(), `SELECT community_id::text, name, installed_by FROM discord_guilds WHERE guild_id = $1`, gwGuildID).
		Scan(&community, &name, &installer)
	if err != nil || name != "Penguins" || installer != "410000000000000777" {
		t.Fatalf("guild row = %q %q installed by %q, %v", community, name, installer, err)
	}
	c, err := e.st.ResolveChannel(t.Context(), store.Channel{Platform: "discord", ChannelID: gwGuildID, ServerID: gwGuildID})
	if err != nil || c.ID != community || !c.Provisional {
		t.Errorf("guild community = %+v, %v; want provisional %s", c, err, community)
	}

	// The callback URL again: its state was used.
	callback := e.hops[len(e.hops)-1]
	if status, _ := e.get(t, callback.String()); status != http.StatusBadRequest {
		t.Errorf("replayed callback = %d, want 400", status)
	}
}

func TestInstallRefuses(t *testing.T) {
	e := instStart(t)
	tests := []struct {
		name, query string
	}{
		{"no state", "code=x&guild_id=" + gwGuildID},
		{"unknown state", "state=nope&code=x&guild_id=" + gwGuildID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := e.get(t, e.srv.URL+"/connect/discord/callback?"+tt.query); status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400", status)
			}
		})
	}
	t.Run("state from another browser", func(t *testing.T) {
		// The link is started in one browser; the callback comes from a
		// browser without its cookie (a victim lured to an attacker's
		// callback URL).
		e.fake.NextAuthorize(gwGuildID)
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(e.srv.URL + "/connect/discord")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			cookie = c
		}
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
			t.Errorf("state cookie = %+v, want HttpOnly SameSite=Lax", cookie)
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		status, _ := e.get(t, e.srv.URL+"/connect/discord/callback?code=x&guild_id="+gwGuildID+"&state="+loc.Query().Get("state"))
		if status != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", status)
		}
	})
	t.Run("bad code", func(t *testing.T) {
		// A state handed out by the link, then a code Discord never issued.
		e.hops = nil
		e.fake.NextAuthorize(gwGuildID)
		noFollow := &http.Client{Jar: e.agent.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get(e.srv.URL + "/connect/discord")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		status, _ := e.get(t, e.srv.URL+"/connect/discord/callback?code=forged&guild_id="+gwGuildID+"&state="+loc.Query().Get("state"))
		if status != http.StatusBadGateway {
			t.Errorf("status = %d, want 502", status)
		}
		var n int
		_ = e.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM discord_guilds`).Scan(&n)
		if n != 0 {
			t.Errorf("%d guilds recorded", n)
		}
	})
}

// TestInstallRefusesUnconfirmedInstall goes through Discord's page with a
// real code each time, so only the check under test stands between the
// callback and a recorded guild.
func TestInstallRefusesUnconfirmedInstall(t *testing.T) {
	e := instStart(t)
	e.fake.AddGuild(gwGuild)
	tests := []struct {
		name string
		// tokenAnswer shapes the token answer; nil leaves the fake's.
		tokenAnswer func(*discordtest.Server)
		// otherBrowser: the callback comes from a browser that did not
		// start the install (no state cookie).
		otherBrowser bool
		wantStatus   int
		wantMessage  string
	}{
		{
			name:        "token answer without a guild",
			tokenAnswer: func(f *discordtest.Server) { f.NextTokenAnswer(false, "bot applications.commands") },
			wantStatus:  http.StatusBadGateway,
			wantMessage: "did not confirm which server",
		},
		{
			name:        "bot scope not granted",
			tokenAnswer: func(f *discordtest.Server) { f.NextTokenAnswer(true, "applications.commands") },
			wantStatus:  http.StatusBadRequest,
			wantMessage: "did not grant the bot scope",
		},
		{
			name:         "state cookie from another browser",
			otherBrowser: true,
			wantStatus:   http.StatusBadRequest,
			wantMessage:  "started in another browser",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.fake.NextAuthorize(gwGuildID)
			if tt.tokenAnswer != nil {
				tt.tokenAnswer(e.fake)
			}
			callback := instCallbackURL(t, e)
			browser := e.agent
			if tt.otherBrowser {
				jar, _ := cookiejar.New(nil)
				browser = &http.Client{Jar: jar}
			}
			resp, err := browser.Get(callback)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantMessage) {
				t.Errorf("callback = %d %q, want %d %q", resp.StatusCode, body, tt.wantStatus, tt.wantMessage)
			}
			var n int
			if err := e.st.Pool().QueryRow(t.Context(), `SELECT count(*) FROM discord_guilds`).Scan(&n); err != nil || n != 0 {
				t.Errorf("%d guilds recorded (%v), want none", n, err)
			}
			// A guild wrongly recorded here must not fail the next case.
			if _, err := e.st.Pool().Exec(t.Context(), `DELETE FROM discord_guilds`); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// instCallbackURL starts an install in e's browser and follows it through
// Discord's page, stopping before the callback: the URL it returns carries
// a code Discord issued and the state of e's browser.
func instCallbackURL(t *testing.T, e *instEnv) string {
	t.Helper()
	client := &http.Client{Jar: e.agent.Jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/connect/discord/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := client.Get(e.srv.URL + "/connect/discord")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Path != "/connect/discord/callback" || loc.Query().Get("code") == "" || loc.Query().Get("state") == "" {
		t.Fatalf("Discord's page sent the browser to %q (%v), want the callback with a code and state", resp.Header.Get("Location"), err)
	}
	return loc.String()
}
