package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validEvent() Event {
	now := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	return Event{Version: 1, ID: EventID("console", "m1"), Platform: "console", Kind: KindChat,
		Channel: Channel{ID: "demo"}, User: User{ID: "alice", Roles: []Role{RoleModerator}},
		Text: "!ping", OccurredAt: now, ReceivedAt: now}
}

func TestEventValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Event)
	}{
		{"version 0", func(e *Event) { e.Version = 0 }},
		{"future version", func(e *Event) { e.Version = Version + 1 }},
		{"id not a uuid", func(e *Event) { e.ID = "m1" }},
		{"unknown platform", func(e *Event) { e.Platform = "myspace" }},
		{"unknown kind", func(e *Event) { e.Kind = "poke" }},
		{"no channel", func(e *Event) { e.Channel.ID = "" }},
		{"chat without user", func(e *Event) { e.User = User{} }},
		{"unknown role", func(e *Event) { e.User.Roles = []Role{"king"} }},
		{"text too long", func(e *Event) { e.Text = strings.Repeat("a", MaxEventText+1) }},
		{"text not utf-8", func(e *Event) { e.Text = "\xff" }},
		{"no time", func(e *Event) { e.OccurredAt = time.Time{} }},
	}
	good := validEvent()
	if err := good.Validate(); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	for _, tt := range tests {
		e := validEvent()
		tt.change(&e)
		if err := e.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
		}
	}
	follow := validEvent()
	follow.Kind, follow.User, follow.Text = KindFollow, User{}, ""
	if err := follow.Validate(); err != nil {
		t.Errorf("a follow needs no chat user: %v", err)
	}
}

func TestInvocationAndReplyValidate(t *testing.T) {
	ev := validEvent()
	inv := Invocation{Version: 1, ID: InvocationID(ev.ID, "core", "cmd:ping"), Event: ev,
		Community: Community{ID: "3b0a0a8e-5f0e-4f7d-9d0e-1c2b3a4d5e6f", Prefix: "!"}, Module: "core",
		Route: "cmd:ping", Command: "ping", Deadline: ev.ReceivedAt.Add(time.Second)}
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Invocation){
		"route/command mismatch": func(i *Invocation) { i.Route = "cmd:pong" },
		"bad trigger kind":       func(i *Invocation) { i.Route, i.Command = "on:poke", "" },
		"bad module":             func(i *Invocation) { i.Module = "Core!" },
		"no deadline":            func(i *Invocation) { i.Deadline = time.Time{} },
		"bad settings":           func(i *Invocation) { i.Settings = []byte("{") },
		"bad event":              func(i *Invocation) { i.Event.ID = "x" },
	} {
		bad := inv
		change(&bad)
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	r := Reply{Version: 1, ID: ReplyID(inv.ID, 1), InvocationID: inv.ID, Target: TargetOf(&ev),
		Text: strings.Repeat("é", TextLimit("console")), Part: 1, Parts: 1, CreatedAt: ev.ReceivedAt}
	if err := r.Validate(); err != nil {
		t.Fatalf("reply at the limit rejected: %v", err)
	}
	r.Target.Platform = "twitch"
	if err := r.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reply over Twitch's 500 characters accepted: %v", err)
	}
	r.Text, r.Action = "", ActionTimeout
	if err := r.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("action without data accepted: %v", err)
	}
	r.ActionData = &PlatformAction{Action: ActionTimeout, TargetUserID: "9", DurationSeconds: 60}
	if err := r.Validate(); err != nil {
		t.Fatalf("timeout action rejected: %v", err)
	}
}

func TestSubjects(t *testing.T) {
	if got := EventSubject("discord", "#general", KindChat); got != "wb.events.discord.=23general.chat" {
		t.Fatalf("EventSubject = %s", got)
	}
	a, err := ParseEventSubject("wb.events.slack.C01.a=2Eb.follow")
	if err == nil {
		t.Fatalf("six tokens parsed: %+v", a)
	}
	a, err = ParseEventSubject(EventSubject("slack", "C01.x", KindFollow))
	if err != nil || a.ChannelID != "C01.x" || a.Kind != KindFollow || a.Platform != "slack" {
		t.Fatalf("round trip = %+v, %v", a, err)
	}
	for _, bad := range []string{"wb.events.myspace.c.chat", "wb.events.console.c.poke", "wb.cmd.core", "wb.events.console.a b.chat"} {
		if _, err := ParseEventSubject(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	p, ch, err := ParseReplySubject(ReplySubject("console", "demo room"))
	if err != nil || p != "console" || ch != "demo room" {
		t.Fatalf("reply subject round trip: %s %s %v", p, ch, err)
	}
}

func TestManifestValidateAndVersions(t *testing.T) {
	m := Manifest{Name: "quotes", Version: "1.2.3", Commands: []CommandSpec{{Name: "quote", Aliases: []string{"q"}, Permission: "everyone"}},
		Triggers: []TriggerSpec{{Kind: KindChat, Per: ThrottleUser, WindowMS: 60000}}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Manifest){
		"bad version":       func(m *Manifest) { m.Version = "1.2" },
		"alias twice":       func(m *Manifest) { m.Commands[0].Aliases = []string{"quote"} },
		"bad permission":    func(m *Manifest) { m.Commands[0].Permission = "admin" },
		"scope sans window": func(m *Manifest) { m.Triggers[0].WindowMS = 0 },
		"unknown kind":      func(m *Manifest) { m.Triggers[0].Kind = "poke" },
	} {
		bad := m
		bad.Commands = append([]CommandSpec{}, m.Commands...)
		bad.Triggers = append([]TriggerSpec{}, m.Triggers...)
		change(&bad)
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.2.3", "1.2.3", 0}, {"1.10.0", "1.9.9", 1}, {"0.9.0", "1.0.0", -1}, {"v2.0.0", "1.0.0", 1}, {"junk", "0.0.1", -1}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func BenchmarkEventDecodeValidate(b *testing.B) {
	e := validEvent()
	raw, _ := json.Marshal(&e)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			b.Fatal(err)
		}
		if err := ev.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
