package portal_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/portal"
	"github.com/waddlebot/waddlebot/schemas"
)

var ctx = context.Background()

// nobody is a user id no user has, for listing every community.
const nobody = "00000000-0000-0000-0000-000000000000"

type env struct {
	t       *testing.T
	st      *store.Store
	url     string
	twitch  *twitchtest.Server
	discord *oauthFake
	slack   *oauthFake
	clock   *clock.Fake

	mu      sync.Mutex
	notices []string
}

func newEnv(t *testing.T, tune func(*portal.Config)) *env {
	t.Helper()
	e := &env{t: t, st: storetest.New(t), twitch: twitchtest.New(t), discord: newOAuthFake(t, "discord"),
		slack: newOAuthFake(t, "slack"), clock: clock.NewFake(time.Now())}
	nt := natstest.Start(t, nil)
	sub, err := nt.Conn.NC.Subscribe(schemas.SubjectControl+".community.>", func(m *nats.Msg) {
		e.mu.Lock()
		e.notices = append(e.notices, m.Subject)
		e.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nt.Conn.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	srv := ops.New(logging.Discard())
	addr, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + addr
	tw := e.twitch.Endpoints()
	cfg := portal.Config{Store: e.st, Conn: nt.Connect(t), PublicURL: e.url, Clock: e.clock, Logger: logging.Discard(),
		Providers: portal.Providers{
			Twitch: portal.Provider{ClientID: e.twitch.ClientID, ClientSecret: e.twitch.ClientSecret,
				AuthorizeURL: tw.Auth + "/authorize", TokenURL: tw.Auth + "/token", UserInfoURL: tw.API + "/users"},
			Discord: portal.Provider{ClientID: e.discord.clientID, ClientSecret: e.discord.secret,
				AuthorizeURL: e.discord.srv.URL + "/authorize", TokenURL: e.discord.srv.URL + "/token", UserInfoURL: e.discord.srv.URL + "/me"},
			Slack: portal.Provider{ClientID: e.slack.clientID, ClientSecret: e.slack.secret,
				AuthorizeURL: e.slack.srv.URL + "/authorize", TokenURL: e.slack.srv.URL + "/token", UserInfoURL: e.slack.srv.URL + "/me"},
		}}
	if tune != nil {
		tune(&cfg)
	}
	p, err := portal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Mount(srv)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *env) noticeCount(communityID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.notices {
		if s == schemas.ControlCommunity(communityID) {
			n++
		}
	}
	return n
}

// browser is one browser: its own cookies.
type browser struct {
	t      *testing.T
	c      *http.Client
	stopAt string // a URL prefix the browser stops before following
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: e.t}
	b.c = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if b.stopAt != "" && strings.HasPrefix(req.URL.String(), b.stopAt) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

func (b *browser) get(u string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	return resp.StatusCode, string(body)
}

func (b *browser) post(u string, form url.Values, header ...string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in page:\n%s", page)
	}
	return m[1]
}

// signInTwitch signs a new browser in as a Twitch user.
func (e *env) signInTwitch(id, login string) *browser {
	e.t.Helper()
	e.twitch.AddUser(twitchtest.User{ID: id, Login: login, DisplayName: strings.ToUpper(login)})
	e.twitch.NextAuthorize(id)
	b := e.browser()
	status, page := b.get(e.url + "/portal/signin/twitch")
	if status != http.StatusOK || !strings.Contains(page, "Signed in as "+strings.ToUpper(login)) {
		e.t.Fatalf("twitch sign-in: %d\n%s", status, page)
	}
	return b
}

func (e *env) auditActions(communityID string) []string {
	e.t.Helper()
	var out []string
	rows, err := e.st.Pool().Query(ctx, `SELECT action FROM audit_log WHERE coalesce(community_id::text, '') = $1 ORDER BY id`, communityID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		out = append(out, a)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestSignInWithTwitchMakesBootstrapSuperAdmin(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.SuperAdmins = []string{"twitch:1001"} })
	b := e.signInTwitch("1001", "boss")
	_, page := b.get(e.url + "/portal/")
	if !strings.Contains(page, "(super-admin)") {
		t.Fatalf("bootstrap super-admin not marked:\n%s", page)
	}
	other := e.signInTwitch("1002", "pleb")
	_, page = other.get(e.url + "/portal/")
	if strings.Contains(page, "(super-admin)") {
		t.Fatal("an ordinary user became super-admin")
	}
	if got := e.auditActions(""); len(got) != 2 || got[0] != "portal.signin" {
		t.Fatalf("audit %v", got)
	}
	if q := e.twitch.AuthorizeRequests()[0]; q.Get("redirect_uri") != e.url+"/connect/portal/twitch/callback" || q.Get("state") == "" {
		t.Fatalf("authorize request %v", q)
	}
}

func TestSignInWithDiscordUsesPKCE(t *testing.T) {
	e := newEnv(t, nil)
	e.discord.nextUser("555", "duck")
	b := e.browser()
	status, page := b.get(e.url + "/portal/signin/discord")
	if status != http.StatusOK || !strings.Contains(page, "Signed in as duck G") {
		t.Fatalf("discord sign-in: %d\n%s", status, page)
	}

	// A verifier that does not match the challenge is refused by the fake,
	// and the portal refuses the sign-in.
	e.discord.nextUser("556", "goose")
	b2 := e.browser()
	b2.stopAt = e.url + "/connect/portal/discord/callback"
	status, loc := b2.get(e.url + "/portal/signin/discord")
	if status != http.StatusFound || !strings.HasPrefix(loc, b2.stopAt) {
		t.Fatalf("stop before callback: %d %s", status, loc)
	}
	u, _ := url.Parse(e.url + "/connect/portal/")
	b2.c.Jar.SetCookies(u, []*http.Cookie{{Name: "waddlebot_portal_pkce", Value: "forged-verifier", Path: "/connect/portal/"}})
	b2.stopAt = ""
	status, page = b2.get(loc)
	if status != http.StatusBadGateway || strings.Contains(page, "Signed in as") {
		t.Fatalf("forged verifier: %d\n%s", status, page)
	}
	if e.discord.refusals() != 1 {
		t.Fatalf("the fake refused %d verifiers", e.discord.refusals())
	}
	if got := e.auditActions(""); !contains(got, "portal.signin_failed") {
		t.Fatalf("failed sign-in not audited: %v", got)
	}
}

func TestSignInWithSlackOpenIDConnect(t *testing.T) {
	e := newEnv(t, nil)
	e.slack.nextUser("U777", "Sly")
	b := e.browser()
	status, page := b.get(e.url + "/portal/signin/slack")
	if status != http.StatusOK || !strings.Contains(page, "Signed in as Sly") {
		t.Fatalf("slack sign-in: %d\n%s", status, page)
	}
}

func TestStateIsOneTimeAndBoundToTheBrowser(t *testing.T) {
	e := newEnv(t, nil)
	e.twitch.AddUser(twitchtest.User{ID: "1", Login: "one"})
	e.twitch.NextAuthorize("1")
	a := e.browser()
	a.stopAt = e.url + "/connect/portal/twitch/callback"
	_, callback := a.get(e.url + "/portal/signin/twitch")

	// Another browser with A's callback URL: no state cookie.
	other := e.browser()
	status, page := other.get(callback)
	if status != http.StatusBadRequest || !strings.Contains(page, "not started in this browser") {
		t.Fatalf("other browser: %d\n%s", status, page)
	}

	// A's own browser signs in.
	a.stopAt = ""
	u, _ := url.Parse(callback)
	state := u.Query().Get("state")
	status, page = a.get(callback)
	if status != http.StatusOK || !strings.Contains(page, "Signed in as one") {
		t.Fatalf("own browser: %d\n%s", status, page)
	}

	// Replaying it, even with the state cookie put back, is refused.
	replay := e.browser()
	cu, _ := url.Parse(e.url + "/connect/")
	replay.c.Jar.SetCookies(cu, []*http.Cookie{{Name: "waddlebot_portal_twitch_state", Value: state, Path: "/connect/"}})
	status, page = replay.get(callback)
	if status != http.StatusBadRequest || !strings.Contains(page, "already used") {
		t.Fatalf("replay: %d\n%s", status, page)
	}
	failed := 0
	for _, a := range e.auditActions("") {
		if a == "portal.signin_failed" {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("failed sign-ins audited: %d (%v)", failed, e.auditActions(""))
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signInTwitch("1", "one")
	_, page := b.get(e.url + "/portal/communities/new")
	token := csrfOf(t, page)
	form := url.Values{"name": {"Pond"}, "prefix": {"!"}, "time_zone": {"UTC"}}

	if status, page := b.post(e.url+"/portal/communities", form); status != http.StatusForbidden || !strings.Contains(page, "security token") {
		t.Fatalf("no token: %d\n%s", status, page)
	}
	form.Set("csrf", "wrong")
	if status, _ := b.post(e.url+"/portal/communities", form); status != http.StatusForbidden {
		t.Fatalf("wrong token: %d", status)
	}
	form.Set("csrf", token)
	if status, _ := b.post(e.url+"/portal/communities", form, "Origin", "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", status)
	}
	// Another user's token does not work in this session.
	other := e.signInTwitch("2", "two")
	_, op := other.get(e.url + "/portal/communities/new")
	form.Set("csrf", csrfOf(t, op))
	if status, _ := b.post(e.url+"/portal/communities", form); status != http.StatusForbidden {
		t.Fatalf("another session's token: %d", status)
	}
	if list, _ := e.st.CommunitiesOf(ctx, nobody, true); len(list) != 0 {
		t.Fatalf("a refused form created %v", list)
	}
	form.Set("csrf", token)
	if status, page := b.post(e.url+"/portal/communities", form, "Origin", e.url); status != http.StatusOK || !strings.Contains(page, "Pond") {
		t.Fatalf("good form: %d\n%s", status, page)
	}
}

func TestSessionExpires(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.SessionIdle = time.Hour; c.SessionMax = 3 * time.Hour })
	b := e.signInTwitch("1", "one")
	for range 3 { // 150 minutes, never an hour idle
		e.clock.Advance(50 * time.Minute)
		if status, page := b.get(e.url + "/portal/"); status != http.StatusOK || !strings.Contains(page, "Signed in") {
			t.Fatalf("active session ended early at %s: %d", e.clock.Now(), status)
		}
	}
	e.clock.Advance(31 * time.Minute) // past the absolute limit
	b.stopAt = e.url + "/portal/signin"
	if status, loc := b.get(e.url + "/portal/"); status != http.StatusSeeOther || loc != "/portal/signin" {
		t.Fatalf("expired session: %d %s", status, loc)
	}
	// The dead session's cookie is cleared, so the browser stops sending it.
	u, _ := url.Parse(e.url)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "waddlebot_portal" {
			t.Fatalf("the expired session's cookie is still kept: %v", c)
		}
	}

	idle := e.signInTwitch("2", "two")
	idle.stopAt = e.url + "/portal/signin"
	e.clock.Advance(61 * time.Minute)
	if status, loc := idle.get(e.url + "/portal/"); status != http.StatusSeeOther || loc != "/portal/signin" {
		t.Fatalf("idle session: %d %s", status, loc)
	}
}

func TestCommunityLifecycleAuditedAndAnnounced(t *testing.T) {
	e := newEnv(t, nil)
	owner := e.signInTwitch("1", "own")
	_, page := owner.get(e.url + "/portal/communities/new")
	token := csrfOf(t, page)

	bad := url.Values{"csrf": {token}, "name": {"Pond"}, "prefix": {"!"}, "time_zone": {"Mars/Olympus"}}
	if status, page := owner.post(e.url+"/portal/communities", bad); status != http.StatusBadRequest || !strings.Contains(page, "Unknown time zone") {
		t.Fatalf("bad time zone: %d\n%s", status, page)
	}
	status, page := owner.post(e.url+"/portal/communities", url.Values{"csrf": {token}, "name": {"Pond"}, "prefix": {"?"}, "time_zone": {"Europe/Paris"}})
	if status != http.StatusOK {
		t.Fatalf("create: %d\n%s", status, page)
	}
	list, err := e.st.CommunitiesOf(ctx, nobody, true)
	if err != nil || len(list) != 1 {
		t.Fatalf("communities %v %v", list, err)
	}
	id := list[0].Community.ID
	base := e.url + "/portal/c/" + id

	if status, page := owner.post(base+"/settings", url.Values{"csrf": {token}, "name": {"Lake"}, "prefix": {"!"}, "time_zone": {"UTC"}, "locale": {"en"}}); status != http.StatusOK || !strings.Contains(page, "Saved.") {
		t.Fatalf("rename: %d\n%s", status, page)
	}
	c, _ := e.st.Community(ctx, id)
	if c.Name != "Lake" || c.Prefix != "!" {
		t.Fatalf("after rename %+v", c)
	}

	// A stranger is refused, and the refusal is recorded.
	stranger := e.signInTwitch("2", "stranger")
	if status, _ := stranger.get(base); status != http.StatusForbidden {
		t.Fatalf("stranger: %d", status)
	}
	// A moderator may look, not change.
	if status, _ := owner.post(base+"/members", url.Values{"csrf": {token}, "platform": {"twitch"}, "platform_user_id": {"2"}, "role": {"moderator"}}); status != http.StatusOK {
		t.Fatalf("add member: %d", status)
	}
	_, sp := stranger.get(base)
	if status, _ := stranger.post(base+"/delete", url.Values{"csrf": {csrfOf(t, sp)}, "confirm": {"Lake"}}); status != http.StatusForbidden {
		t.Fatalf("moderator delete: %d", status)
	}
	if status, _ := owner.post(base+"/delete", url.Values{"csrf": {token}, "confirm": {"lake"}}); status != http.StatusBadRequest {
		t.Fatalf("unconfirmed delete: %d", status)
	}
	if status, _ := owner.post(base+"/delete", url.Values{"csrf": {token}, "confirm": {"Lake"}}); status != http.StatusOK {
		t.Fatalf("delete: %d", status)
	}
	if _, err := e.st.Community(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("still there: %v", err)
	}

	got := e.auditActions(id)
	want := []string{"community.create", "community.update", "permission.denied", "member.add", "permission.denied", "community.delete"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("audit %v, want %v", got, want)
	}
	log, _ := e.st.AuditLog(ctx, id, 10)
	upd := log[len(log)-2]
	if upd.Action != "community.update" || upd.Details["before"].(map[string]any)["name"] != "Pond" ||
		upd.Details["after"].(map[string]any)["name"] != "Lake" || upd.Details["ip"] != "127.0.0.1" {
		t.Fatalf("update entry %+v", upd)
	}
	// create, rename, member add, delete
	deadline := time.Now().Add(5 * time.Second)
	for e.noticeCount(id) < 4 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.noticeCount(id); n != 4 {
		t.Fatalf("%d control notices, want 4", n)
	}
}

func TestMembersRoles(t *testing.T) {
	e := newEnv(t, nil)
	owner := e.signInTwitch("1", "own")
	_, page := owner.get(e.url + "/portal/communities/new")
	token := csrfOf(t, page)
	owner.post(e.url+"/portal/communities", url.Values{"csrf": {token}, "name": {"Pond"}, "prefix": {"!"}, "time_zone": {"UTC"}})
	list, _ := e.st.CommunitiesOf(ctx, nobody, true)
	id := list[0].Community.ID
	base := e.url + "/portal/c/" + id
	owner.post(base+"/members", url.Values{"csrf": {token}, "platform": {"discord"}, "platform_user_id": {"77"}, "role": {"admin"}})

	e.discord.nextUser("77", "adm")
	admin := e.browser()
	if status, _ := admin.get(e.url + "/portal/signin/discord"); status != http.StatusOK {
		t.Fatal("admin sign-in")
	}
	_, ap := admin.get(base + "/members")
	if !strings.Contains(ap, "Add a member") {
		t.Fatalf("admin sees no add form:\n%s", ap)
	}
	at := csrfOf(t, ap)
	ownerUser, _ := e.st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "", false)
	// An admin cannot demote or remove the owner.
	if status, _ := admin.post(base+"/members/"+ownerUser.ID+"/role", url.Values{"csrf": {at}, "role": {"moderator"}}); status != http.StatusForbidden {
		t.Fatalf("admin demotes owner: %d", status)
	}
	if status, _ := admin.post(base+"/members/"+ownerUser.ID+"/remove", url.Values{"csrf": {at}}); status != http.StatusForbidden {
		t.Fatalf("admin removes owner: %d", status)
	}
	// The last owner cannot leave.
	if status, _ := owner.post(base+"/members/"+ownerUser.ID+"/remove", url.Values{"csrf": {token}}); status != http.StatusConflict {
		t.Fatalf("last owner leaves: %d", status)
	}
	ms, _ := e.st.Members(ctx, id)
	if len(ms) != 2 || ms[0].Role != "owner" || ms[1].Role != "admin" || ms[1].User.DisplayName != "adm G" {
		t.Fatalf("members %+v", ms)
	}
}

func TestDevSignInOnlyWhenEnabled(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.DevSignIn = true })
	b := e.browser()
	_, page := b.get(e.url + "/portal/signin")
	if status, _ := b.post(e.url+"/portal/signin/dev", url.Values{}); status != http.StatusForbidden {
		t.Fatalf("dev sign-in without token: %d", status)
	}
	if status, page := b.post(e.url+"/portal/signin/dev", url.Values{"csrf": {csrfOf(t, page)}}); status != http.StatusOK || !strings.Contains(page, "Local developer") {
		t.Fatalf("dev sign-in: %d\n%s", status, page)
	}

	off := newEnv(t, nil)
	ob := off.browser()
	_, page = ob.get(off.url + "/portal/signin")
	if strings.Contains(page, "local developer") {
		t.Fatal("dev button offered outside dev")
	}
	if status, _ := ob.post(off.url+"/portal/signin/dev", url.Values{"csrf": {"x"}}); status != http.StatusForbidden {
		t.Fatalf("dev sign-in outside dev: %d", status)
	}
}

func TestDeclinedSignInIsAudited(t *testing.T) {
	e := newEnv(t, nil)
	e.twitch.NextDecline()
	b := e.browser()
	status, page := b.get(e.url + "/portal/signin/twitch")
	if status != http.StatusOK || !strings.Contains(page, "You declined") || strings.Contains(page, "Signed in as") {
		t.Fatalf("declined: %d\n%s", status, page)
	}
	if got := e.auditActions(""); len(got) != 1 || got[0] != "portal.signin_failed" {
		t.Fatalf("audit %v", got)
	}
}
