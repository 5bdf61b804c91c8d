package console

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestNewEvent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	ok := Message{Channel: "demo", User: "ada", Text: "!ping", ID: "client-1"}
	with := func(change func(*Message)) Message {
		m := ok
		change(&m)
		return m
	}
	cases := []struct {
		name  string
		msg   Message
		roles []schemas.Role
		err   error
	}{
		{"everyone by default", with(func(m *Message) {}), nil, nil},
		{"everyone named", with(func(m *Message) { m.Role = "everyone" }), nil, nil},
		{"member", with(func(m *Message) { m.Role = "member" }), []schemas.Role{schemas.RoleMember}, nil},
		{"subscriber", with(func(m *Message) { m.Role = "subscriber" }), []schemas.Role{schemas.RoleSubscriber}, nil},
		{"vip", with(func(m *Message) { m.Role = "vip" }), []schemas.Role{schemas.RoleVIP}, nil},
		{"moderator, any case", with(func(m *Message) { m.Role = " Moderator" }), []schemas.Role{schemas.RoleModerator}, nil},
		{"broadcaster", with(func(m *Message) { m.Role = "broadcaster" }), []schemas.Role{schemas.RoleBroadcaster}, nil},
		{"owner is the broadcaster", with(func(m *Message) { m.Role = "owner" }), []schemas.Role{schemas.RoleBroadcaster}, nil},
		{"unknown role", with(func(m *Message) { m.Role = "admin" }), nil, ErrInvalidMessage},
		{"name chars", with(func(m *Message) { m.Channel, m.User = "Dev_Room-2", "x" }), nil, nil},
		{"32-character names", with(func(m *Message) { m.Channel, m.User = strings.Repeat("c", 32), strings.Repeat("u", 32) }), nil, nil},
		{"33-character channel", with(func(m *Message) { m.Channel = strings.Repeat("c", 33) }), nil, ErrInvalidMessage},
		{"empty channel", with(func(m *Message) { m.Channel = "" }), nil, ErrInvalidMessage},
		{"channel with a dot", with(func(m *Message) { m.Channel = "a.b" }), nil, ErrInvalidMessage},
		{"channel with a space", with(func(m *Message) { m.Channel = "my room" }), nil, ErrInvalidMessage},
		{"channel with a wildcard", with(func(m *Message) { m.Channel = ">" }), nil, ErrInvalidMessage},
		{"empty user", with(func(m *Message) { m.User = "" }), nil, ErrInvalidMessage},
		{"user with an accent", with(func(m *Message) { m.User = "zoë" }), nil, ErrInvalidMessage},
		{"33-character user", with(func(m *Message) { m.User = strings.Repeat("u", 33) }), nil, ErrInvalidMessage},
		{"empty text", with(func(m *Message) { m.Text = "" }), nil, ErrInvalidMessage},
		{"blank text", with(func(m *Message) { m.Text = " \t\n" }), nil, ErrInvalidMessage},
		{"text not UTF-8", with(func(m *Message) { m.Text = "caf\xe9" }), nil, ErrInvalidMessage},
		{"text too long", with(func(m *Message) { m.Text = strings.Repeat("a", schemas.MaxEventText+1) }), nil, ErrInvalidMessage},
		{"longest text", with(func(m *Message) { m.Text = strings.Repeat("a", schemas.MaxEventText) }), nil, nil},
		{"id too long", with(func(m *Message) { m.ID = strings.Repeat("i", maxIDLength+1) }), nil, ErrInvalidMessage},
		{"the bot's own", with(func(m *Message) { m.Bot = true }), nil, ErrOwnMessage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev, err := NewEvent(c.msg, now)
			if c.err != nil {
				if !errors.Is(err, c.err) || ev != nil {
					t.Fatalf("NewEvent = %v, %v; want error %v", ev, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("event does not validate: %v", err)
			}
			if !slices.Equal(ev.User.Roles, c.roles) {
				t.Errorf("roles %v, want %v", ev.User.Roles, c.roles)
			}
			want := schemas.Event{
				Version: schemas.Version, ID: schemas.EventID("console", c.msg.ID), Platform: "console",
				PlatformEventID: c.msg.ID, Kind: schemas.KindChat,
				Channel: schemas.Channel{ID: c.msg.Channel, Name: c.msg.Channel},
				User: schemas.User{ID: c.msg.User, Login: c.msg.User, DisplayName: c.msg.User,
					Roles: ev.User.Roles},
				Text: c.msg.Text, OccurredAt: now.UTC(), ReceivedAt: now.UTC(),
			}
			if ev.ID != want.ID || ev.Platform != want.Platform || ev.PlatformEventID != want.PlatformEventID ||
				ev.Kind != want.Kind || ev.Channel != want.Channel || ev.Text != want.Text ||
				ev.User.ID != want.User.ID || ev.User.Login != want.User.Login || ev.User.DisplayName != want.User.DisplayName ||
				!ev.OccurredAt.Equal(now) || ev.OccurredAt.Location() != time.UTC || ev.Version != want.Version {
				t.Errorf("event\n  %+v\nwant\n  %+v", *ev, want)
			}
			if wantSubject := "wb.events.console." + c.msg.Channel + ".chat"; ev.Subject() != wantSubject {
				t.Errorf("subject %q, want %q", ev.Subject(), wantSubject)
			}
		})
	}
}

func TestNewEventIDs(t *testing.T) {
	now := time.Now()
	m := Message{Channel: "demo", User: "ada", Text: "hi", ID: "same-click"}
	a, _ := NewEvent(m, now)
	b, _ := NewEvent(m, now.Add(time.Second))
	if a.ID != b.ID || a.ID != schemas.EventID("console", "same-click") {
		t.Fatalf("a double submit got ids %s and %s", a.ID, b.ID)
	}
	m.ID = ""
	c, _ := NewEvent(m, now)
	d, _ := NewEvent(m, now)
	if c.ID == d.ID {
		t.Fatalf("two messages without client ids share id %s", c.ID)
	}
	for _, id := range []string{c.ID, d.ID} {
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 {
			t.Fatalf("id %q is not a UUIDv7 (%v)", id, err)
		}
	}
	if c.PlatformEventID != "" {
		t.Errorf("platform event id %q without a client id", c.PlatformEventID)
	}
}

func FuzzNewEvent(f *testing.F) {
	f.Add("demo", "ada", "moderator", "!ping", "id-1")
	f.Add("", "", "", "", "")
	f.Add("a.b", "x y", "owner", "\xff", "")
	f.Add("Dev_Room-2", "bob", "Everyone", "!so @alice", "")
	f.Add(strings.Repeat("c", 32), strings.Repeat("u", 33), "vip", " ", "x")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Fuzz(func(t *testing.T, channel, user, role, text, id string) {
		ev, err := NewEvent(Message{Channel: channel, User: user, Role: role, Text: text, ID: id}, now)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error %v does not wrap ErrInvalidMessage", err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("NewEvent made an invalid event: %v", err)
		}
		addr, err := schemas.ParseEventSubject(ev.Subject())
		if err != nil || addr.ChannelID != channel || addr.Platform != "console" || addr.Kind != schemas.KindChat {
			t.Fatalf("subject %q reads back as %+v, %v", ev.Subject(), addr, err)
		}
		if ev.Text != text || ev.User.Login != user {
			t.Fatalf("event changed the message: %q by %q", ev.Text, ev.User.Login)
		}
	})
}
