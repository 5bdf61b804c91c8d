package discord_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestSendReplyThreadedWithNonce(t *testing.T) {
	env := newSndEnv(t)
	r := sndReply("pong")
	if err := env.platform.Send(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	msgs := env.srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("messages = %+v, want one", msgs)
	}
	m := msgs[0]
	if m.ChannelID != sndChannel || m.Content != "pong" {
		t.Errorf("message in %s %q, want %s %q", m.ChannelID, m.Content, sndChannel, "pong")
	}
	if m.Reference == nil || m.Reference.MessageID != sndMessage ||
		m.Reference.FailIfNotExists == nil || *m.Reference.FailIfNotExists {
		t.Errorf("message_reference = %+v, want message %s with fail_if_not_exists false", m.Reference, sndMessage)
	}
	if m.Nonce != discord.Nonce(r.ID) || len(m.Nonce) == 0 || len(m.Nonce) > discordtest.MaxNonce || !m.EnforceNonce {
		t.Errorf("nonce %q enforce %v, want %q enforced", m.Nonce, m.EnforceNonce, discord.Nonce(r.ID))
	}
}

func TestNonceIsDeterministicAndDistinct(t *testing.T) {
	a, b := sndReply("a"), sndReply("b")
	if discord.Nonce(a.ID) != discord.Nonce(a.ID) {
		t.Fatal("the nonce of one reply id changed")
	}
	if discord.Nonce(a.ID) == discord.Nonce(b.ID) {
		t.Fatalf("replies %s and %s share nonce %s", a.ID, b.ID, discord.Nonce(a.ID))
	}
	if n := discord.Nonce(a.ID); len(n) != 25 {
		t.Fatalf("nonce %q has %d characters, want 25", n, len(n))
	}
}

func TestSendRedeliveryCreatesOneMessage(t *testing.T) {
	env := newSndEnv(t)
	r := sndReply("only once")
	for range 2 {
		if err := env.platform.Send(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	path := "/api/v9/channels/" + sndChannel + "/messages"
	if got := env.srv.CountRequests(http.MethodPost, path); got != 2 {
		t.Fatalf("create message requests = %d, want 2 (the redelivery goes out again)", got)
	}
	if msgs := env.srv.Messages(); len(msgs) != 1 {
		t.Fatalf("%d messages created, want one: the nonce makes the second request return the first message", len(msgs))
	}
}

// sndMentionsLocked checks that a request body locks mentions to users.
func sndMentionsLocked(t *testing.T, body []byte) {
	t.Helper()
	var got struct {
		AllowedMentions *struct {
			Parse       []string `json:"parse"`
			Roles       []string `json:"roles"`
			RepliedUser *bool    `json:"replied_user"`
		} `json:"allowed_mentions"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	am := got.AllowedMentions
	if am == nil {
		t.Fatalf("request has no allowed_mentions, so @everyone would ping: %s", body)
	}
	if !slices.Equal(am.Parse, []string{"users"}) || len(am.Roles) != 0 {
		t.Errorf("allowed_mentions = %+v, want parse [users] only (no everyone, no roles)", *am)
	}
}

func TestSendNeverPingsEveryone(t *testing.T) {
	const text = "@everyone @here <@&300> free nitro"
	t.Run("channel message", func(t *testing.T) {
		env := newSndEnv(t)
		if err := env.platform.Send(t.Context(), sndReply(text)); err != nil {
			t.Fatal(err)
		}
		msgs := env.srv.Messages()
		if len(msgs) != 1 {
			t.Fatalf("messages = %+v", msgs)
		}
		sndMentionsLocked(t, msgs[0].Body)
		if msgs[0].Content != text {
			t.Errorf("content = %q, want the text as written (allowed_mentions does the blocking)", msgs[0].Content)
		}
	})
	t.Run("interaction follow-ups", func(t *testing.T) {
		env := newSndEnv(t)
		first, second := sndReply(text), sndReply(text)
		first.Parts, second.Part, second.Parts = 2, 2, 2
		env.sndDeferred(t, first.EventID, "tok-mentions", false)
		for _, r := range []*schemas.Reply{first, second} {
			if err := env.platform.Send(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		ups := env.srv.Followups()
		if len(ups) != 2 {
			t.Fatalf("webhook messages = %+v", ups)
		}
		for _, u := range ups {
			sndMentionsLocked(t, u.Body)
		}
	})
}

func TestSendRateLimited(t *testing.T) {
	tests := []struct {
		name   string
		global bool
	}{
		{name: "route bucket", global: false},
		{name: "global", global: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSndEnv(t)
			env.srv.RateLimitNext(1, 30*time.Second, tt.global)
			err := env.platform.Send(t.Context(), sndReply("later"))
			outcome, delay := sndOutcome(err)
			if outcome != "defer" || delay != 30*time.Second {
				t.Fatalf("Send = %v (%s %s), want defer 30s", err, outcome, delay)
			}
			if msgs := env.srv.Messages(); len(msgs) != 0 {
				t.Fatalf("messages = %+v, want none", msgs)
			}
			if !tt.global {
				return
			}
			// The global limit holds every send of this replica, without
			// a request: each would be another 429 counted against the bot.
			before := len(env.srv.Requests())
			r := sndReply("elsewhere")
			r.Target.ChannelID = "200000000000000077"
			if outcome, delay := sndOutcome(env.platform.Send(t.Context(), r)); outcome != "defer" || delay <= 0 || delay > 30*time.Second {
				t.Fatalf("send during the global limit: %s %s, want defer up to 30s", outcome, delay)
			}
			if after := len(env.srv.Requests()); after != before {
				t.Fatalf("%d requests during the global limit, want none", after-before)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		outcome string
		mention string
	}{
		{name: "missing permissions", status: http.StatusForbidden, outcome: "permanent", mention: "permission"},
		{name: "unknown channel", status: http.StatusNotFound, outcome: "permanent", mention: "channel is gone"},
		{name: "bad token", status: http.StatusUnauthorized, outcome: "permanent", mention: "DISCORD_BOT_TOKEN"},
		{name: "bad request", status: http.StatusBadRequest, outcome: "permanent", mention: "50035"},
		{name: "server error", status: http.StatusInternalServerError, outcome: "failure", mention: "500"},
		{name: "unavailable", status: http.StatusServiceUnavailable, outcome: "failure", mention: "503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSndEnv(t)
			env.srv.FailNext(1, tt.status)
			err := env.platform.Send(t.Context(), sndReply("hello"))
			if outcome, _ := sndOutcome(err); outcome != tt.outcome || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("Send = %v (%s), want %s mentioning %q", err, outcome, tt.outcome, tt.mention)
			}
		})
	}
}

func TestSendWithAWrongTokenIsPermanent(t *testing.T) {
	env := newSndEnv(t)
	platform, err := discord.NewPlatform(discord.PlatformConfig{Session: sndSession(t, env.srv, "not-the-token"), AppID: env.srv.AppID})
	if err != nil {
		t.Fatal(err)
	}
	err = platform.Send(t.Context(), sndReply("hello"))
	if outcome, _ := sndOutcome(err); outcome != "permanent" || !strings.Contains(err.Error(), "bot token") {
		t.Fatalf("Send = %v (%s), want permanent about the bot token", err, outcome)
	}
}

func TestSendInteraction(t *testing.T) {
	tests := []struct {
		name       string
		ephemeral  bool // the deferral
		visibility schemas.Visibility
		// want: kinds and flags of the webhook requests of the two parts.
		wantKinds []string
		wantFlags []int
	}{
		{name: "public", visibility: schemas.VisibilityPublic,
			wantKinds: []string{discordtest.WebhookEditOriginal, discordtest.WebhookFollowup}, wantFlags: []int{0, 0}},
		{name: "ephemeral deferral", ephemeral: true, visibility: schemas.VisibilityPrivate,
			wantKinds: []string{discordtest.WebhookEditOriginal, discordtest.WebhookFollowup}, wantFlags: []int{0, 64}},
		// The public "thinking…" is deleted once the private answer went.
		{name: "private reply to a public deferral", visibility: schemas.VisibilityPrivate,
			wantKinds: []string{discordtest.WebhookFollowup, discordtest.WebhookDeleteOriginal, discordtest.WebhookFollowup}, wantFlags: []int{64, 0, 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSndEnv(t)
			first, second := sndReply("part one"), sndReply("part two")
			first.Parts, second.Part, second.Parts = 2, 2, 2
			first.Visibility, second.Visibility = tt.visibility, tt.visibility
			token := "tok-" + strings.ReplaceAll(tt.name, " ", "-")
			env.sndDeferred(t, first.EventID, token, tt.ephemeral)
			for _, r := range []*schemas.Reply{first, second} {
				if err := env.platform.Send(t.Context(), r); err != nil {
					t.Fatal(err)
				}
			}
			ups := env.srv.Followups()
			if len(ups) != len(tt.wantKinds) {
				t.Fatalf("webhook messages = %+v, want %d", ups, len(tt.wantKinds))
			}
			for i, u := range ups {
				if u.Kind != tt.wantKinds[i] || u.Flags != tt.wantFlags[i] || u.Token != token || u.AppID != env.srv.AppID {
					t.Errorf("part %d: %s flags %d token %s app %s, want %s flags %d token %s",
						i+1, u.Kind, u.Flags, u.Token, u.AppID, tt.wantKinds[i], tt.wantFlags[i], token)
				}
			}
			if ups[0].Content != "part one" || ups[len(ups)-1].Content != "part two" {
				t.Errorf("contents %q, %q", ups[0].Content, ups[len(ups)-1].Content)
			}
			if msgs := env.srv.Messages(); len(msgs) != 0 {
				t.Errorf("channel messages = %+v, want none: the interaction answers", msgs)
			}
		})
	}
}

func TestSendInteractionExpiredIsPermanent(t *testing.T) {
	env := newSndEnv(t)
	r := sndReply("too late")
	// Kept but never answered at the fake: its webhook is unknown, as
	// after Discord's 15 minutes.
	if err := env.interactions.Put(t.Context(), schemas.PlatformDiscord, r.EventID,
		discordInteraction(env.srv.AppID, "tok-expired")); err != nil {
		t.Fatal(err)
	}
	err := env.platform.Send(t.Context(), r)
	if outcome, _ := sndOutcome(err); outcome != "permanent" || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Send = %v (%s), want permanent about the expired interaction", err, outcome)
	}
}

func TestSendPrivate(t *testing.T) {
	t.Run("direct message", func(t *testing.T) {
		env := newSndEnv(t)
		r := sndReply("just for you")
		r.Visibility = schemas.VisibilityPrivate
		if err := env.platform.Send(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		dm := env.srv.DMChannel(sndUser)
		msgs := env.srv.Messages()
		if dm == "" || len(msgs) != 1 || msgs[0].ChannelID != dm || msgs[0].Content != "just for you" {
			t.Fatalf("DM channel %q, messages %+v: want the text in the DM", dm, msgs)
		}
		if msgs[0].Reference != nil {
			t.Errorf("a DM refers to the channel message %+v", msgs[0].Reference)
		}
		sndMentionsLocked(t, msgs[0].Body)
	})
	t.Run("no user", func(t *testing.T) {
		env := newSndEnv(t)
		r := sndReply("for whom?")
		r.Visibility, r.Target.UserID = schemas.VisibilityPrivate, ""
		if outcome, _ := sndOutcome(env.platform.Send(t.Context(), r)); outcome != "permanent" {
			t.Fatalf("outcome %s, want permanent", outcome)
		}
		if msgs := env.srv.Messages(); len(msgs) != 0 {
			t.Fatalf("a private reply went public: %+v", msgs)
		}
	})
}

func TestSendInThread(t *testing.T) {
	env := newSndEnv(t)
	r := sndReply("in the thread")
	r.Target.ThreadID = "200000000000000055"
	if err := env.platform.Send(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if msgs := env.srv.Messages(); len(msgs) != 1 || msgs[0].ChannelID != r.Target.ThreadID {
		t.Fatalf("messages = %+v, want one in thread %s", msgs, r.Target.ThreadID)
	}
}

func TestSendUnsupportedActionIsPermanent(t *testing.T) {
	env := newSndEnv(t)
	r := sndReply("")
	r.Action = schemas.ActionShoutout
	if outcome, _ := sndOutcome(env.platform.Send(t.Context(), r)); outcome != "permanent" {
		t.Fatalf("outcome %s, want permanent", outcome)
	}
}

// TestSendInteractionSecondReply: a module that answers a slash command
// with two replies shows both: the first edits the deferred response, the
// second is a follow-up (also when the first is delivered again).
func TestSendInteractionSecondReply(t *testing.T) {
	env := newSndEnv(t)
	first, second := sndReply("first answer"), sndReply("second answer")
	second.EventID = first.EventID
	env.sndDeferred(t, first.EventID, "tok-two-replies", false)
	for _, r := range []*schemas.Reply{first, second, first} {
		if err := env.platform.Send(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	ups := env.srv.Followups()
	want := []struct{ kind, content string }{
		{discordtest.WebhookEditOriginal, "first answer"},
		{discordtest.WebhookFollowup, "second answer"},
		{discordtest.WebhookEditOriginal, "first answer"},
	}
	if len(ups) != len(want) {
		t.Fatalf("webhook messages = %+v, want %d", ups, len(want))
	}
	for i, w := range want {
		if ups[i].Kind != w.kind || ups[i].Content != w.content {
			t.Errorf("message %d: %s %q, want %s %q", i+1, ups[i].Kind, ups[i].Content, w.kind, w.content)
		}
	}
}
