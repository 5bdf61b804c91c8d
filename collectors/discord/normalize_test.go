package discord

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/schemas"
)

// gwDirectory is a directory of one guild.
type gwDirectory struct {
	guilds   map[string]guildView
	channels map[string]string
	threads  map[string]bool
}

func (d gwDirectory) guild(id string) (guildView, bool) { g, ok := d.guilds[id]; return g, ok }
func (d gwDirectory) channel(id string) (string, bool)  { return d.channels[id], d.threads[id] }

var nzDir = gwDirectory{
	guilds: map[string]guildView{"g1": {OwnerID: "owner", RolePermissions: map[string]int64{
		"g1": 1 << 11, "mods": permissionManageGuild, "admins": permissionAdministrator | 1<<11, "plain": 1 << 10}}},
	channels: map[string]string{"c1": "general", "t1": "a thread"},
	threads:  map[string]bool{"t1": true},
}

var nzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func nzMessage(author string, extra map[string]any) []byte {
	m := map[string]any{
		"id": "m1", "channel_id": "c1", "guild_id": "g1", "content": "hello", "type": 0,
		"timestamp": "2025-06-01T11:59:00.000000+00:00",
		"author":    map[string]any{"id": author, "username": "user-" + author},
		"member":    map[string]any{"roles": []string{}},
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func TestNormalizeMessageRoles(t *testing.T) {
	tests := []struct {
		name   string
		author string
		extra  map[string]any
		want   schemas.Role
	}{
		{"member", "u1", nil, schemas.RoleMember},
		{"role without rights", "u1", map[string]any{"member": map[string]any{"roles": []string{"plain"}}}, schemas.RoleMember},
		{"manage guild", "u1", map[string]any{"member": map[string]any{"roles": []string{"mods"}}}, schemas.RoleModerator},
		{"administrator", "u1", map[string]any{"member": map[string]any{"roles": []string{"plain", "admins"}}}, schemas.RoleModerator},
		{"owner", "owner", nil, schemas.RoleBroadcaster},
		{"unknown guild", "u1", map[string]any{"guild_id": "g2", "member": map[string]any{"roles": []string{"mods"}}}, schemas.RoleMember},
		{"DM", "u1", map[string]any{"guild_id": nil, "member": nil}, schemas.RoleMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := normalizeMessage(nzMessage(tt.author, tt.extra), "bot", nzDir, nzNow)
			if err != nil || ev == nil {
				t.Fatalf("normalizeMessage = %v, %v", ev, err)
			}
			if !slices.Equal(ev.User.Roles, []schemas.Role{tt.want}) {
				t.Errorf("roles = %v, want %s", ev.User.Roles, tt.want)
			}
		})
	}
}

func TestNormalizeMessageFields(t *testing.T) {
	ev, err := normalizeMessage(nzMessage("u1", map[string]any{"channel_id": "t1"}), "bot", nzDir, nzNow)
	if err != nil || ev == nil {
		t.Fatalf("normalizeMessage = %v, %v", ev, err)
	}
	want := schemas.Event{
		Version: schemas.Version, ID: schemas.EventID("discord", "m1"), Platform: "discord", PlatformEventID: "m1",
		Kind: schemas.KindChat, Channel: schemas.Channel{ID: "t1", Name: "a thread", ServerID: "g1"},
		User: schemas.User{ID: "u1", Login: "user-u1", Roles: []schemas.Role{schemas.RoleMember}}, Text: "hello",
		ThreadID: "t1", ReplyToID: "m1",
		OccurredAt: time.Date(2025, 6, 1, 11, 59, 0, 0, time.UTC), ReceivedAt: nzNow,
	}
	got, _ := json.Marshal(ev)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("event =\n%s\nwant\n%s", got, exp)
	}
}

func TestNormalizeMessageDrops(t *testing.T) {
	tests := []struct {
		name    string
		raw     []byte
		wantErr bool
	}{
		{"own message", nzMessage("bot", nil), false},
		{"another bot", nzMessage("b2", map[string]any{"author": map[string]any{"id": "b2", "bot": true}}), false},
		{"webhook", nzMessage("u1", map[string]any{"webhook_id": "w1"}), false},
		{"system message", nzMessage("u1", map[string]any{"type": 7}), false},
		{"no text", nzMessage("u1", map[string]any{"content": " "}), false},
		{"no author", nzMessage("u1", map[string]any{"author": nil}), true},
		{"not JSON", []byte("{"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := normalizeMessage(tt.raw, "bot", nzDir, nzNow)
			if ev != nil || (err != nil) != tt.wantErr {
				t.Errorf("normalizeMessage = %+v, %v; want nil and error %v", ev, err, tt.wantErr)
			}
		})
	}
}

func TestCommandChoices(t *testing.T) {
	var many []schemas.CommandSpec
	for i := range 30 {
		many = append(many, schemas.CommandSpec{Name: string(rune('a'+i%26)) + "x" + string(rune('a'+i/26))})
	}
	ms := []schemas.Manifest{
		{Commands: []schemas.CommandSpec{{Name: "ping", Aliases: []string{"p"}}, {Name: "Poll"}, {Name: "quote"}}},
		{Commands: many},
	}
	tests := []struct {
		typed string
		want  int
		first string
	}{
		{"p", 4, "Poll"}, // Poll, p, ping, pxa
		{"!PI", 1, "ping"},
		{"zzz", 0, ""},
		{"", maxChoices, "Poll"},
	}
	for _, tt := range tests {
		got := commandChoices(ms, tt.typed)
		if len(got) != tt.want || (tt.want > 0 && got[0] != tt.first) {
			t.Errorf("commandChoices(%q) = %v, want %d starting with %q", tt.typed, got, tt.want, tt.first)
		}
	}
	if !commandPrivate([]schemas.Manifest{{Commands: []schemas.CommandSpec{{Name: "s", Aliases: []string{"sec"},
		Visibility: schemas.VisibilityEphemeral}}}}, "SEC x") {
		t.Error("an ephemeral command's alias is not private")
	}
}

// FuzzNormalizeMessage: any MESSAGE_CREATE payload gives an error, nothing,
// or a valid chat event.
func FuzzNormalizeMessage(f *testing.F) {
	f.Add(nzMessage("u1", nil))
	f.Add(nzMessage("owner", map[string]any{"channel_id": "t1"}))
	f.Add(nzMessage("u1", map[string]any{"member": map[string]any{"roles": []string{"mods", "admins"}, "nick": "N"}}))
	f.Add(nzMessage("u1", map[string]any{"guild_id": nil, "member": nil, "content": "\xff\xfe"}))
	f.Add([]byte(`{"id":"1","channel_id":"2","author":{"id":"3"},"content":"x","timestamp":"bad"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := normalizeMessage(raw, "bot", nzDir, nzNow)
		if err != nil || ev == nil {
			return
		}
		if verr := ev.Validate(); verr != nil || ev.Kind != schemas.KindChat || ev.User.ID == "bot" || ev.User.Bot {
			t.Fatalf("normalizeMessage(%q) = %+v (validate: %v)", raw, ev, verr)
		}
	})
}
