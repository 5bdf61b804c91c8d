package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

func mustExec(t *testing.T, s *store.Store, sql string, args ...any) {
	t.Helper()
	if _, err := s.Pool().Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func optionKeys(os []store.AttachOption) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.Channel.Platform+"/"+o.Channel.ChannelID+"="+o.Reason)
	}
	return out
}

func TestAttachOptionsPerPlatform(t *testing.T) {
	s := storetest.New(t)
	u, err := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "100"}, "Ann", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []store.Identity{{Platform: "discord", PlatformUserID: "D1"}, {Platform: "slack", PlatformUserID: "U1"}} {
		mustExec(t, s, `INSERT INTO portal_identities (platform, platform_user_id, user_id) VALUES ($1, $2, $3)`, id.Platform, id.PlatformUserID, u.ID)
	}
	// Allowed: her connected broadcaster account, the guild she installed
	// (and its known channel), the workspace she installed.
	mustExec(t, s, `INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('100', 'ann', 'broadcaster', 'connected')`)
	g, _ := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "G1", ServerID: "G1", Name: "Guild"})
	mustExec(t, s, `INSERT INTO discord_guilds (guild_id, name, community_id, installed_by) VALUES ('G1', 'Guild', $1, 'D1')`, g.ID)
	if _, err := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "C1", ServerID: "G1", Name: "general"}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, `INSERT INTO slack_workspaces (team_id, team_name, status, installed_by) VALUES ('T1', 'Team', 'installed', 'U1')`)
	// Refused: someone else's broadcaster, her disconnected one, a guild
	// and a workspace installed by others, an uninstalled workspace.
	mustExec(t, s, `INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('200', 'bob', 'broadcaster', 'connected')`)
	mustExec(t, s, `INSERT INTO portal_identities (platform, platform_user_id, user_id) VALUES ('twitch', '101', $1)`, u.ID)
	mustExec(t, s, `INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('101', 'old', 'broadcaster', 'disconnected')`)
	g2, _ := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "G2", ServerID: "G2"})
	mustExec(t, s, `INSERT INTO discord_guilds (guild_id, community_id, installed_by) VALUES ('G2', $1, 'D9')`, g2.ID)
	mustExec(t, s, `INSERT INTO slack_workspaces (team_id, status, installed_by) VALUES ('T2', 'installed', 'U9'), ('T3', 'uninstalled', 'U1')`)
	// Allowed: a channel of a community she administers; refused: one she
	// only moderates.
	mine, _ := s.CreateOwnedCommunity(ctx, "t", u.ID, store.NewCommunity{Name: "Mine"}, nil)
	mustExec(t, s, `INSERT INTO channels (platform, channel_id, community_id) VALUES ('twitch', '300', $1)`, mine.ID)
	other, _ := s.CreateCommunity(ctx, "t", store.NewCommunity{Name: "Other"})
	mustExec(t, s, `INSERT INTO community_members (community_id, user_id, role) VALUES ($1, $2, 'moderator')`, other.ID, u.ID)
	mustExec(t, s, `INSERT INTO channels (platform, channel_id, community_id) VALUES ('twitch', '400', $1)`, other.ID)

	os, err := s.AttachOptions(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := optionKeys(os)
	want := []string{"discord/C1=discord-install", "discord/G1=discord-install", "slack/T1=slack-install",
		"twitch/100=twitch-broadcaster", "twitch/300=admin"}
	if !slices.Equal(got, want) {
		t.Fatalf("options %v, want %v", got, want)
	}
	for _, o := range os {
		switch o.Channel.ChannelID {
		case "G1":
			if o.Channel.CommunityID != g.ID || !o.CommunityProvisional || o.Channel.ServerID != "G1" {
				t.Fatalf("guild option %+v", o)
			}
		case "100":
			if o.Channel.CommunityID != "" || o.Channel.Name != "ann" {
				t.Fatalf("never-seen broadcaster option %+v", o)
			}
		}
	}
}

func TestAttachMovesServerAndRemovesEmptyProvisional(t *testing.T) {
	s := storetest.New(t)
	u, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "discord", PlatformUserID: "D1"}, "Ann", false)
	g, _ := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "G1", ServerID: "G1", Name: "Guild"})
	mustExec(t, s, `INSERT INTO discord_guilds (guild_id, name, community_id, installed_by) VALUES ('G1', 'Guild', $1, 'D1')`, g.ID)
	s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "C1", ServerID: "G1", Name: "general"})
	mine, _ := s.CreateOwnedCommunity(ctx, "t", u.ID, store.NewCommunity{Name: "Mine"}, nil)

	stale := store.Channel{Platform: "discord", ChannelID: "G1", ServerID: "G1", Name: "Guild", CommunityID: mine.ID}
	if _, err := s.AttachChannel(ctx, "tester", g.ID, stale, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("attach from where it is not: %v", err)
	}
	res, err := s.AttachChannel(ctx, "tester", mine.ID, store.Channel{Platform: "discord", ChannelID: "G1", ServerID: "G1", Name: "Guild", CommunityID: g.ID}, map[string]any{"ip": "1.2.3.4"})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != g.ID || !res.FromRemoved || !slices.Equal(res.Moved, []string{"discord/G1", "discord/C1"}) {
		t.Fatalf("result %+v", res)
	}
	if _, err := s.Community(ctx, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("empty provisional community kept: %v", err)
	}
	// The install record follows instead of cascading away.
	var gc string
	if err := s.Pool().QueryRow(ctx, `SELECT community_id::text FROM discord_guilds WHERE guild_id = 'G1'`).Scan(&gc); err != nil || gc != mine.ID {
		t.Fatalf("guild record %q %v", gc, err)
	}
	// A new channel of the guild now joins the guild's new community.
	c, _ := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "C2", ServerID: "G1"})
	if c.ID != mine.ID {
		t.Fatalf("new channel went to %s", c.ID)
	}
	if _, err := s.AttachChannel(ctx, "tester", mine.ID, store.Channel{Platform: "discord", ChannelID: "G1", ServerID: "G1"}, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("attach to where it is: %v", err)
	}
	log, _ := s.AuditLog(ctx, mine.ID, 5)
	if log[0].Action != "channel.attach" || log[0].Details["before"] != g.ID || log[0].Details["after"] != mine.ID || log[0].Details["ip"] != "1.2.3.4" {
		t.Fatalf("attach entry %+v", log[0])
	}
	old, _ := s.AuditLog(ctx, g.ID, 5)
	if len(old) != 1 || old[0].Action != "channel.detach" {
		t.Fatalf("old community's log %+v", old)
	}

	// Detaching the server takes its channels; the next message makes a
	// fresh provisional community.
	removed, err := s.DetachChannel(ctx, "tester", mine.ID, "discord", "G1", nil)
	if err != nil || len(removed) != 3 {
		t.Fatalf("detach %v %v", removed, err)
	}
	fresh, _ := s.ResolveChannel(ctx, store.Channel{Platform: "discord", ChannelID: "C1", ServerID: "G1"})
	if fresh.ID == mine.ID || !fresh.Provisional {
		t.Fatalf("after detach %+v", fresh)
	}
	if _, err := s.DetachChannel(ctx, "tester", mine.ID, "discord", "G1", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second detach %v", err)
	}
}

func TestClaimCommunity(t *testing.T) {
	s := storetest.New(t)
	u, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "Ann", false)
	p, _ := s.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "1", Name: "ann"})
	if err := s.ClaimCommunity(ctx, "tester", p.ID, u.ID, nil); err != nil {
		t.Fatal(err)
	}
	c, _ := s.Community(ctx, p.ID)
	role, _ := s.MemberRole(ctx, p.ID, u.ID)
	if c.Provisional || role != store.RoleOwner {
		t.Fatalf("claimed %+v role %q", c, role)
	}
	if err := s.ClaimCommunity(ctx, "tester", p.ID, u.ID, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second claim %v", err)
	}
}

func TestSuperAdminAndDisable(t *testing.T) {
	s := storetest.New(t)
	a, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "1"}, "A", true)
	b, _ := s.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "2"}, "B", false)
	if err := s.SetSuperAdmin(ctx, "t", a.ID, false, nil); !errors.Is(err, store.ErrLastSuperAdmin) {
		t.Fatalf("revoke last: %v", err)
	}
	if err := s.SetUserDisabled(ctx, "t", a.ID, true, nil); !errors.Is(err, store.ErrLastSuperAdmin) {
		t.Fatalf("disable last: %v", err)
	}
	if err := s.SetSuperAdmin(ctx, "t", b.ID, true, map[string]any{"ip": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSuperAdmin(ctx, "t", a.ID, false, nil); err != nil {
		t.Fatalf("revoke with another left: %v", err)
	}
	now := time.Now()
	tok, _, err := s.CreatePortalSession(ctx, store.NewPortalSession{UserID: a.ID, Now: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserDisabled(ctx, "t", a.ID, true, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM portal_sessions WHERE user_id = $1`, a.ID).Scan(&n)
	if n != 0 {
		t.Fatalf("%d sessions left", n)
	}
	if _, err := s.TouchPortalSession(ctx, tok, now, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("disabled session %v", err)
	}
	us, err := s.PortalUsers(ctx)
	if err != nil || len(us) != 2 || us[0].User.ID != b.ID || !us[1].User.Disabled || len(us[1].Identities) != 1 {
		t.Fatalf("users %+v %v", us, err)
	}
	es, _, _ := s.SiteAudit(ctx, store.AuditFilter{ActionPrefix: "user."})
	if len(es) != 3 || es[0].Action != "user.disabled" || es[0].Details["before"] != false || es[0].Details["after"] != true || es[0].CommunityID != "" {
		t.Fatalf("user audit %+v", es)
	}
	if err := s.SetSuperAdmin(ctx, "t", "00000000-0000-0000-0000-000000000000", true, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown user %v", err)
	}
}

func TestSiteAuditPagesAndFilters(t *testing.T) {
	s := storetest.New(t)
	c, _ := s.CreateCommunity(ctx, "t", store.NewCommunity{Name: "C"}) // community.create
	for i := range 5 {
		_ = s.Audit(ctx, nil, store.AuditEntry{Actor: fmt.Sprintf("portal:%d", i%2), Action: "portal.signin"})
	}
	_ = s.Audit(ctx, nil, store.AuditEntry{Actor: "x", Action: "portal_signin"})
	_ = s.Audit(ctx, nil, store.AuditEntry{CommunityID: c.ID, Actor: "portal:1", Action: "permission.denied"})

	var all []store.AuditEntry
	before := int64(0)
	for page := 0; ; page++ {
		es, more, err := s.SiteAudit(ctx, store.AuditFilter{Before: before, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, es...)
		if !more {
			break
		}
		before = es[len(es)-1].ID
		if page > 5 {
			t.Fatal("paging does not end")
		}
	}
	if len(all) != 8 || all[0].Action != "permission.denied" || all[7].Action != "community.create" {
		t.Fatalf("all pages %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].ID >= all[i-1].ID {
			t.Fatalf("not newest first at %d", i)
		}
	}
	tests := []struct {
		name   string
		filter store.AuditFilter
		want   int
	}{
		{"prefix", store.AuditFilter{ActionPrefix: "portal."}, 5},
		{"prefix is not a pattern", store.AuditFilter{ActionPrefix: "portal_"}, 1},
		{"actor", store.AuditFilter{Actor: "portal:1"}, 3},
		{"both", store.AuditFilter{ActionPrefix: "portal.", Actor: "portal:1"}, 2},
		{"none", store.AuditFilter{ActionPrefix: "nothing"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es, more, err := s.SiteAudit(ctx, tt.filter)
			if err != nil || more || len(es) != tt.want {
				t.Fatalf("%d entries (more %v) %v, want %d", len(es), more, err, tt.want)
			}
		})
	}
}
