package portal_test

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
)

// newCommunity has b create a community and returns its id and b's CSRF
// token.
func (e *env) newCommunity(b *browser, name string) (string, string) {
	e.t.Helper()
	_, page := b.get(e.url + "/portal/communities/new")
	token := csrfOf(e.t, page)
	status, page := b.post(e.url+"/portal/communities", url.Values{"csrf": {token}, "name": {name}, "prefix": {"!"}, "time_zone": {"UTC"}})
	if status != http.StatusOK {
		e.t.Fatalf("create %s: %d\n%s", name, status, page)
	}
	var id string
	if err := e.st.Pool().QueryRow(ctx, `SELECT id::text FROM communities WHERE name = $1`, name).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id, token
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.st.Pool().Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func (e *env) userOf(platform, id string) string {
	e.t.Helper()
	var u string
	if err := e.st.Pool().QueryRow(ctx, `SELECT user_id::text FROM portal_identities WHERE platform = $1 AND platform_user_id = $2`, platform, id).Scan(&u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

// waitNotices waits for at least n notices of a community; the notices
// come over real NATS, so they arrive a little after the response.
func (e *env) waitNotices(communityID string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.noticeCount(communityID) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.noticeCount(communityID); got < n {
		e.t.Fatalf("%d control notices for %s, want %d", got, communityID, n)
	}
}

func (e *env) channelCommunity(platform, id string) string {
	e.t.Helper()
	var c string
	err := e.st.Pool().QueryRow(ctx, `SELECT community_id::text FROM channels WHERE platform = $1 AND channel_id = $2`, platform, id).Scan(&c)
	if err != nil && !strings.Contains(err.Error(), "no rows") {
		e.t.Fatal(err)
	}
	return c
}

func attachForm(token, platform, id string) url.Values {
	return url.Values{"csrf": {token}, "platform": {platform}, "channel_id": {id}}
}

func TestAttachTwitchBroadcasterClaimsProvisional(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signInTwitch("1", "ann")
	pond, token := e.newCommunity(b, "Pond")
	e.exec(`INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('1', 'ann', 'broadcaster', 'connected'),
		('2', 'bob', 'broadcaster', 'connected'), ('3', 'cat', 'broadcaster', 'disconnected')`)
	e.exec(`INSERT INTO portal_identities (platform, platform_user_id, user_id) VALUES ('twitch', '3', $1)`, e.userOf("twitch", "1"))
	prov, err := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "1", Name: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	base := e.url + "/portal/c/" + pond

	_, page := b.get(base + "/channels/attach")
	if !strings.Contains(page, "your Twitch channel") || !strings.Contains(page, "(provisional)") || strings.Contains(page, "bob") {
		t.Fatalf("attach page:\n%s", page)
	}
	if status, page := b.post(base+"/channels/attach", attachForm(token, "twitch", "1")); status != http.StatusOK || !strings.Contains(page, "<code>1</code>") {
		t.Fatalf("attach: %d\n%s", status, page)
	}
	if got := e.channelCommunity("twitch", "1"); got != pond {
		t.Fatalf("channel in %s", got)
	}
	if _, err := e.st.Community(ctx, prov.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("provisional community kept: %v", err)
	}
	// Both communities are announced: the one it left and the one it joined.
	e.waitNotices(pond, 2) // create, attach
	e.waitNotices(prov.ID, 1)
	if got := e.auditActions(prov.ID); !contains(got, "channel.detach") {
		t.Fatalf("old community's log %v", got)
	}

	// Someone else's broadcaster and her own disconnected one are refused.
	for _, id := range []string{"2", "3"} {
		if status, _ := b.post(base+"/channels/attach", attachForm(token, "twitch", id)); status != http.StatusForbidden {
			t.Fatalf("attach twitch/%s: %d", id, status)
		}
	}
	if got := e.auditActions(pond); strings.Count(strings.Join(got, ","), "permission.denied") != 2 {
		t.Fatalf("refusals not audited: %v", got)
	}
	if status, _ := b.post(base+"/channels/attach", attachForm(token, "", "")); status != http.StatusBadRequest {
		t.Fatalf("empty form: %d", status)
	}
}

func TestAttachDiscordAndSlackInstalls(t *testing.T) {
	e := newEnv(t, nil)
	e.discord.nextUser("D1", "duck")
	d := e.browser()
	if status, _ := d.get(e.url + "/portal/signin/discord"); status != http.StatusOK {
		t.Fatal("discord sign-in")
	}
	dc, dt := e.newCommunity(d, "Ducks")
	for _, g := range []struct{ id, by string }{{"G1", "D1"}, {"G2", "D9"}} {
		c, err := e.st.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: g.id, ServerID: g.id, Name: g.id})
		if err != nil {
			t.Fatal(err)
		}
		e.exec(`INSERT INTO discord_guilds (guild_id, name, community_id, installed_by) VALUES ($1, $1, $2, $3)`, g.id, c.ID, g.by)
	}
	e.st.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "C1", ServerID: "G1", Name: "general"})

	e.slack.nextUser("U1", "Sly")
	s := e.browser()
	if status, _ := s.get(e.url + "/portal/signin/slack"); status != http.StatusOK {
		t.Fatal("slack sign-in")
	}
	sc, st := e.newCommunity(s, "Slackers")
	e.exec(`INSERT INTO slack_workspaces (team_id, team_name, status, installed_by) VALUES
		('T1', 'Team', 'installed', 'U1'), ('T2', 'Other', 'installed', 'U9'), ('T3', 'Gone', 'uninstalled', 'U1')`)

	tests := []struct {
		name       string
		b          *browser
		community  string
		token      string
		platform   string
		channel    string
		wantStatus int
	}{
		{"discord guild installed by the user", d, dc, dt, "discord", "G1", http.StatusOK},
		{"discord guild installed by another", d, dc, dt, "discord", "G2", http.StatusForbidden},
		{"slack workspace installed by the user", s, sc, st, "slack", "T1", http.StatusOK},
		{"slack workspace installed by another", s, sc, st, "slack", "T2", http.StatusForbidden},
		{"slack workspace uninstalled", s, sc, st, "slack", "T3", http.StatusForbidden},
		{"another platform's user has no discord proof", s, sc, st, "discord", "G2", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, page := tt.b.post(e.url+"/portal/c/"+tt.community+"/channels/attach", attachForm(tt.token, tt.platform, tt.channel))
			if status != tt.wantStatus {
				t.Fatalf("%d, want %d\n%s", status, tt.wantStatus, page)
			}
			in := e.channelCommunity(tt.platform, tt.channel) == tt.community
			if in != (tt.wantStatus == http.StatusOK) {
				t.Fatalf("channel attached: %v", in)
			}
		})
	}
	// The guild's channel followed the guild.
	if got := e.channelCommunity("discord", "C1"); got != dc {
		t.Fatalf("guild channel in %s", got)
	}
}

func TestMoveBetweenCommunitiesAndRefusals(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signInTwitch("1", "ann")
	a, token := e.newCommunity(b, "A")
	bc, _ := e.newCommunity(b, "B")
	e.exec(`INSERT INTO channels (platform, channel_id, name, community_id) VALUES ('twitch', '50', 'fifty', $1)`, a)

	other := e.signInTwitch("2", "bob")
	c, _ := e.newCommunity(other, "C")
	// Ann's own connected channel sits in Bob's claimed community, where
	// she only moderates: she may not take it.
	e.exec(`INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('1', 'ann', 'broadcaster', 'connected')`)
	e.exec(`INSERT INTO channels (platform, channel_id, name, community_id) VALUES ('twitch', '1', 'ann', $1), ('twitch', '60', 'sixty', $1)`, c)
	e.exec(`INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, 'moderator')`, c, e.userOf("twitch", "1"))

	if status, _ := b.post(e.url+"/portal/c/"+bc+"/channels/attach", attachForm(token, "twitch", "50")); status != http.StatusOK {
		t.Fatalf("move A to B: %d", status)
	}
	if e.channelCommunity("twitch", "50") != bc {
		t.Fatal("not moved")
	}
	if _, err := e.st.Community(ctx, a); err != nil {
		t.Fatalf("a claimed community left empty is kept: %v", err)
	}
	e.waitNotices(a, 2)
	e.waitNotices(bc, 2)

	for _, id := range []string{"1", "60"} {
		if status, _ := b.post(e.url+"/portal/c/"+bc+"/channels/attach", attachForm(token, "twitch", id)); status != http.StatusForbidden {
			t.Fatalf("take twitch/%s from C: %d", id, status)
		}
		if e.channelCommunity("twitch", id) != c {
			t.Fatalf("twitch/%s moved", id)
		}
	}
	// Attaching into a community where she is only a moderator is refused.
	if status, _ := b.post(e.url+"/portal/c/"+c+"/channels/attach", attachForm(token, "twitch", "50")); status != http.StatusForbidden {
		t.Fatalf("attach into a moderated community: %d", status)
	}
	if got := e.auditActions(bc); strings.Count(strings.Join(got, ","), "permission.denied") != 2 {
		t.Fatalf("refusals in B %v", got)
	}
	if got := e.auditActions(c); !contains(got, "permission.denied") {
		t.Fatalf("refusal in C %v", got)
	}
}

func TestDetach(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signInTwitch("1", "ann")
	id, token := e.newCommunity(b, "Pond")
	e.exec(`INSERT INTO channels (platform, channel_id, server_id, name, community_id) VALUES
		('twitch', '1', '', 'ann', $1), ('discord', 'G1', 'G1', 'guild', $1), ('discord', 'C1', 'G1', 'general', $1)`, id)
	base := e.url + "/portal/c/" + id

	_, page := b.get(base + "/channels")
	if !strings.Contains(page, "/channels/detach") || !strings.Contains(page, "Attach a channel") {
		t.Fatalf("channels page has no detach or attach:\n%s", page)
	}
	// A channel following its server here would come straight back.
	if status, _ := b.post(base+"/channels/detach", attachForm(token, "discord", "C1")); status != http.StatusConflict {
		t.Fatalf("detach a server's channel: %d", status)
	}
	if status, _ := b.post(base+"/channels/detach", attachForm(token, "twitch", "nope")); status != http.StatusNotFound {
		t.Fatalf("detach unknown: %d", status)
	}
	// A moderator may not detach.
	mod := e.signInTwitch("2", "bob")
	e.exec(`INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, 'moderator')`, id, e.userOf("twitch", "2"))
	_, mp := mod.get(base + "/channels")
	if strings.Contains(mp, "/channels/detach") {
		t.Fatal("moderator offered detach")
	}
	if status, _ := mod.post(base+"/channels/detach", attachForm(csrfOf(t, mp), "twitch", "1")); status != http.StatusForbidden {
		t.Fatalf("moderator detach: %d", status)
	}

	for _, ch := range []string{"twitch/1", "discord/G1"} {
		platform, cid, _ := strings.Cut(ch, "/")
		if status, _ := b.post(base+"/channels/detach", attachForm(token, platform, cid)); status != http.StatusOK {
			t.Fatalf("detach %s: %d", ch, status)
		}
	}
	chs, _ := e.st.Channels(ctx, id)
	if len(chs) != 0 {
		t.Fatalf("left %+v", chs)
	}
	// On its next message the channel gets a fresh provisional community.
	c, err := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "1"})
	if err != nil || c.ID == id || !c.Provisional {
		t.Fatalf("after detach %+v %v", c, err)
	}
	e.waitNotices(id, 3) // create, two detaches
	got := e.auditActions(id)
	if strings.Count(strings.Join(got, ","), "channel.detach") != 2 || !contains(got, "permission.denied") {
		t.Fatalf("audit %v", got)
	}
}

func TestClaimProvisionalCommunity(t *testing.T) {
	e := newEnv(t, nil)
	e.exec(`INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('1', 'ann', 'broadcaster', 'connected')`)
	prov, _ := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "1", Name: "ann"})
	foreign, _ := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "2", Name: "bob"})

	b := e.signInTwitch("1", "ann")
	_, page := b.get(e.url + "/portal/claim")
	if !strings.Contains(page, "twitch:ann") || !strings.Contains(page, "/portal/claim/"+prov.ID) || strings.Contains(page, foreign.ID) {
		t.Fatalf("claim page:\n%s", page)
	}
	token := csrfOf(t, page)
	if status, _ := b.post(e.url+"/portal/claim/"+foreign.ID, url.Values{"csrf": {token}}); status != http.StatusForbidden {
		t.Fatalf("claim another's: %d", status)
	}
	if got := e.auditActions(foreign.ID); !contains(got, "permission.denied") {
		t.Fatalf("refused claim not audited: %v", got)
	}
	if status, page := b.post(e.url+"/portal/claim/"+prov.ID, url.Values{"csrf": {token}}); status != http.StatusOK || !strings.Contains(page, "twitch:ann") {
		t.Fatalf("claim: %d\n%s", status, page)
	}
	c, _ := e.st.Community(ctx, prov.ID)
	role, _ := e.st.MemberRole(ctx, prov.ID, e.userOf("twitch", "1"))
	if c.Provisional || role != store.RoleOwner {
		t.Fatalf("after claim %+v %q", c, role)
	}
	e.waitNotices(prov.ID, 1)
	if status, _ := b.post(e.url+"/portal/claim/"+prov.ID, url.Values{"csrf": {token}}); status != http.StatusForbidden {
		t.Fatalf("claim twice: %d", status)
	}
	if status, _ := b.post(e.url+"/portal/claim/not-a-uuid", url.Values{"csrf": {token}}); status != http.StatusNotFound {
		t.Fatalf("claim bad id: %d", status)
	}
}

func TestNewFormsNeedCSRF(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.SuperAdmins = []string{"twitch:1"} })
	b := e.signInTwitch("1", "ann")
	id, _ := e.newCommunity(b, "Pond")
	other := e.signInTwitch("2", "bob")
	e.exec(`INSERT INTO channels (platform, channel_id, community_id) VALUES ('twitch', '1', $1)`, id)
	prov, _ := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "9"})
	user2 := e.userOf("twitch", "2")
	forms := []string{
		"/portal/c/" + id + "/channels/attach",
		"/portal/c/" + id + "/channels/detach",
		"/portal/claim/" + prov.ID,
		"/portal/admin/users/" + user2 + "/super",
		"/portal/admin/users/" + user2 + "/disabled",
	}
	for _, f := range forms {
		for _, token := range []string{"", "wrong"} {
			form := url.Values{"platform": {"twitch"}, "channel_id": {"1"}, "value": {"on"}}
			if token != "" {
				form.Set("csrf", token)
			}
			if status, page := b.post(e.url+f, form); status != http.StatusForbidden || !strings.Contains(page, "security token") {
				t.Fatalf("%s with token %q: %d", f, token, status)
			}
		}
	}
	if got := e.auditActions(""); strings.Count(strings.Join(got, ","), "csrf.refused") != 2*len(forms) {
		t.Fatalf("csrf refusals audited: %v", got)
	}
	if e.channelCommunity("twitch", "1") != id {
		t.Fatal("a refused form detached")
	}
	u, _ := e.st.PortalUser(ctx, user2)
	if u.SuperAdmin || u.Disabled {
		t.Fatalf("a refused form changed %+v", u)
	}
	_ = other
}
