package slack

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/slack-go/slack/slackevents"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestNormalize(t *testing.T) {
	base := message{team: intakeTeam, channel: intakeChannel, user: intakeHuman, text: "!ping", ts: "1700000000.000100"}
	with := func(change func(*message)) message {
		m := base
		change(&m)
		return m
	}
	tests := []struct {
		name     string
		msg      message
		ignored  bool
		bad      bool
		bot      bool
		text     string
		threadID string
	}{
		{name: "plain message", msg: base, text: "!ping"},
		{name: "thread reply keeps its thread", msg: with(func(m *message) { m.threadTS = "1699999999.000001" }),
			text: "!ping", threadID: "1699999999.000001"},
		{name: "thread broadcast", msg: with(func(m *message) { m.subtype = "thread_broadcast"; m.threadTS = "1699999999.000001" }),
			text: "!ping", threadID: "1699999999.000001"},
		{name: "the bot's own message", msg: with(func(m *message) { m.user = intakeBotUser }), bot: true, text: "!ping"},
		{name: "a message with a bot id", msg: with(func(m *message) { m.botID = "B0OTHER" }), bot: true, text: "!ping"},
		{name: "bot_message subtype", msg: with(func(m *message) { m.subtype = "bot_message"; m.user = ""; m.botID = "B0OTHER" }),
			ignored: true},
		{name: "edit", msg: with(func(m *message) { m.subtype = "message_changed" }), ignored: true},
		{name: "deletion", msg: with(func(m *message) { m.subtype = "message_deleted" }), ignored: true},
		{name: "join notice", msg: with(func(m *message) { m.subtype = "channel_join" }), ignored: true},
		{name: "edited mention", msg: with(func(m *message) { m.edited = true }), ignored: true},
		{name: "mention then prefixed command", msg: with(func(m *message) { m.text = "<@U0BOT> !ping" }), text: "!ping"},
		{name: "mention with a name then command", msg: with(func(m *message) { m.text = "<@U0BOT|waddlebot>: !so bob" }), text: "!so bob"},
		{name: "mention then words stays whole", msg: with(func(m *message) { m.text = "<@U0BOT> ping" }), text: "<@U0BOT> ping"},
		{name: "mention alone stays whole", msg: with(func(m *message) { m.text = "<@U0BOT>" }), text: "<@U0BOT>"},
		{name: "another user's longer id is not the bot", msg: with(func(m *message) { m.text = "<@U0BOTX> !ping" }), text: "<@U0BOTX> !ping"},
		{name: "mention not at the start", msg: with(func(m *message) { m.text = "hey <@U0BOT> !ping" }), text: "hey <@U0BOT> !ping"},
		{name: "no ts", msg: with(func(m *message) { m.ts = "" }), bad: true},
		{name: "malformed ts", msg: with(func(m *message) { m.ts = "soon" }), bad: true},
		{name: "no user", msg: with(func(m *message) { m.user = "" }), bad: true},
		{name: "no team", msg: with(func(m *message) { m.team = "" }), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := normalize(tt.msg, intakeBotUser)
			switch {
			case tt.ignored:
				if !errors.Is(err, errIgnored) {
					t.Fatalf("normalize = %v, %v; want errIgnored", ev, err)
				}
				return
			case tt.bad:
				if err == nil || errors.Is(err, errIgnored) {
					t.Fatalf("normalize = %v, %v; want a malformed error", ev, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if ev.User.Bot != tt.bot || ev.Text != tt.text || ev.ThreadID != tt.threadID {
				t.Fatalf("bot %v text %q thread %q; want %v %q %q", ev.User.Bot, ev.Text, ev.ThreadID, tt.bot, tt.text, tt.threadID)
			}
			wantID := schemas.EventID("slack", tt.msg.team+":"+tt.msg.channel+":"+tt.msg.ts)
			if ev.ID != wantID || ev.Kind != schemas.KindChat || ev.Channel.ServerID != intakeTeam || ev.Channel.ID != intakeChannel {
				t.Fatalf("event %+v: wrong id, kind or channel", ev)
			}
			if !tt.bot && (ev.User.Login != tt.msg.user || !ev.User.HasRole(schemas.RoleMember)) {
				t.Fatalf("user %+v: want login = id and member", ev.User)
			}
		})
	}
}

func TestParseTS(t *testing.T) {
	got, err := parseTS("1355517523.000005")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1355517523, 5000).UTC(); !got.Equal(want) {
		t.Fatalf("parseTS = %v, want %v", got, want)
	}
	for _, bad := range []string{"", ".5", "-1.0", "1.x", "1.1234567890", "999999999999.1"} {
		if _, err := parseTS(bad); err == nil {
			t.Errorf("parseTS(%q) accepted", bad)
		}
	}
}

func intakeParse(t *testing.T, body string) slackevents.EventsAPIEvent {
	t.Helper()
	ev, err := parseEventsBody([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestIntakeFoldsMessageAndMention(t *testing.T) {
	const ts = "1700000000.000200"
	message := callbackBody("Ev01", messageInner(intakeHuman, "<@U0BOT> !ping", ts, ""))
	mention := callbackBody("Ev02", mentionInner(intakeHuman, "<@U0BOT> !ping", ts, ""))
	for _, order := range [][]string{{message, mention}, {mention, message}} {
		in, pub, _ := newIntakeOnly()
		for _, body := range order {
			if err := in.HandleEvent(t.Context(), "", intakeParse(t, body)); err != nil {
				t.Fatal(err)
			}
		}
		got := pub.published()
		if len(got) != 1 {
			t.Fatalf("published %d events, want 1", len(got))
		}
		if got[0].Text != "!ping" || got[0].ID != schemas.EventID("slack", intakeTeam+":"+intakeChannel+":"+ts) {
			t.Fatalf("event %+v", got[0])
		}
	}
}

func TestIntakeDropsBots(t *testing.T) {
	in, pub, _ := newIntakeOnly()
	bodies := []string{
		callbackBody("Ev10", messageInner(intakeBotUser, "pong", "1700000000.000300", "")),
		callbackBody("Ev11", messageInner("U0OTHER", "beep", "1700000000.000301", `,"bot_id":"B0OTHER"`)),
		callbackBody("Ev12", `{"type":"message","subtype":"bot_message","bot_id":"B0OTHER","channel":"C0CHAN","text":"hi","ts":"1700000000.000302"}`),
	}
	for _, body := range bodies {
		if err := in.HandleEvent(t.Context(), "", intakeParse(t, body)); err != nil {
			t.Fatal(err)
		}
	}
	if got := pub.published(); len(got) != 0 {
		t.Fatalf("published %d bot messages: %+v", len(got), got[0])
	}
}

func TestIntakeRetriesAfterPublishFailure(t *testing.T) {
	in, pub, _ := newIntakeOnly()
	ev := intakeParse(t, callbackBody("Ev20", messageInner(intakeHuman, "!ping", "1700000000.000400", "")))
	pub.setFail(errors.New("nats down"))
	if err := in.HandleEvent(t.Context(), "", ev); err == nil {
		t.Fatal("HandleEvent succeeded while publishing failed")
	}
	pub.setFail(nil)
	for range 2 { // Slack's retry, then a second retry of the same event_id
		if err := in.HandleEvent(t.Context(), "", ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := pub.published(); len(got) != 1 {
		t.Fatalf("published %d events, want 1", len(got))
	}
}

func TestIntakeDisconnects(t *testing.T) {
	tests := []struct {
		name  string
		inner string
		want  []string
	}{
		{name: "app_uninstalled", inner: `{"type":"app_uninstalled"}`, want: []string{intakeTeam + ":app_uninstalled"}},
		{name: "bot token revoked", inner: `{"type":"tokens_revoked","tokens":{"bot":["U0BOT"]}}`,
			want: []string{intakeTeam + ":tokens_revoked"}},
		{name: "user tokens revoked only", inner: `{"type":"tokens_revoked","tokens":{"oauth":["U0ALICE"]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _, ws := newIntakeOnly()
			if err := in.HandleEvent(context.Background(), "", intakeParse(t, callbackBody("Ev30", tt.inner))); err != nil {
				t.Fatal(err)
			}
			if got := ws.disconnected(); !slices.Equal(got, tt.want) {
				t.Fatalf("disconnects %v, want %v", got, tt.want)
			}
		})
	}
}
