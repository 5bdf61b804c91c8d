package twitch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/schemas"
)

func chatReply(text string) *schemas.Reply {
	return &schemas.Reply{Version: schemas.Version, ID: "0f8e1c7a-0000-4000-8000-000000000001",
		InvocationID: "0f8e1c7a-0000-4000-8000-000000000002",
		Target: schemas.Target{Platform: schemas.PlatformTwitch, ChannelID: fixBroadcaster, ChannelName: "streamer",
			ReplyToID: "parent-msg-1", UserID: fixChatter},
		Text: text, Part: 1, Parts: 1, Visibility: schemas.VisibilityPublic, Action: schemas.ActionMessage}
}

func TestSendChatRepliesToParentAsBot(t *testing.T) {
	env := newSenderEnv(t)
	if err := env.platform.Send(context.Background(), chatReply("hello chat")); err != nil {
		t.Fatal(err)
	}
	plain := chatReply("no parent")
	plain.Target.ReplyToID = ""
	if err := env.platform.Send(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	chat := env.srv.Chat()
	if len(chat) != 2 {
		t.Fatalf("chat = %+v, want 2 messages", chat)
	}
	if c := chat[0]; c.BroadcasterID != fixBroadcaster || c.SenderID != fixBot || c.Text != "hello chat" ||
		c.ReplyParentID != "parent-msg-1" || c.MessageID == "" {
		t.Errorf("first message = %+v", c)
	}
	if chat[1].ReplyParentID != "" {
		t.Errorf("second message replies to %q, want no parent", chat[1].ReplyParentID)
	}
}

func TestSendChatFailures(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration
		text       string
		outcome    string
		// delay bounds: Ratelimit-Reset is whole epoch seconds.
		minDelay, maxDelay time.Duration
	}{
		{name: "429 defers until Ratelimit-Reset", status: http.StatusTooManyRequests, retryAfter: 90 * time.Second,
			outcome: "defer", minDelay: 88 * time.Second, maxDelay: 90 * time.Second},
		{name: "503 with Retry-After", status: http.StatusServiceUnavailable, retryAfter: 7 * time.Second,
			outcome: "retry_after", minDelay: 7 * time.Second, maxDelay: 7 * time.Second},
		{name: "500 without Retry-After is a plain failure", status: http.StatusInternalServerError, outcome: "failure"},
		{name: "403 is permanent", status: http.StatusForbidden, outcome: "permanent"},
		{name: "too long is permanent", text: strings.Repeat("a", 501), outcome: "permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSenderEnv(t)
			if tt.status != 0 {
				env.srv.FailNextChat(1, tt.status, tt.retryAfter)
			}
			text := tt.text
			if text == "" {
				text = "hello"
			}
			err := env.platform.Send(context.Background(), chatReply(text))
			outcome, delay := sendOutcome(err)
			if outcome != tt.outcome {
				t.Fatalf("Send = %v (%s), want %s", err, outcome, tt.outcome)
			}
			if delay < tt.minDelay || delay > tt.maxDelay {
				t.Errorf("delay = %s, want %s..%s", delay, tt.minDelay, tt.maxDelay)
			}
			if len(env.srv.Chat()) != 0 {
				t.Errorf("a failed send reached chat: %+v", env.srv.Chat())
			}
		})
	}
}

func TestSendChatDroppedIsLoggedNotRetried(t *testing.T) {
	env := newSenderEnv(t)
	env.srv.DropNextChat(1, "automod_held")
	if err := env.platform.Send(context.Background(), chatReply("something AutoMod dislikes")); err != nil {
		t.Fatalf("Send = %v, want nil (a dropped message is not retried)", err)
	}
	if got := env.srv.ChatCalls(); got != 1 {
		t.Errorf("chat calls = %d, want 1", got)
	}
	if len(env.srv.Chat()) != 0 {
		t.Errorf("dropped message shows in chat: %+v", env.srv.Chat())
	}
	if logs := env.logs.String(); !strings.Contains(logs, "automod_held") || !strings.Contains(logs, "level=WARN") {
		t.Errorf("no warning with the drop code in the logs:\n%s", logs)
	}
}

func TestSendChatRefreshesOnceOn401(t *testing.T) {
	env := newSenderEnv(t)
	old, _ := env.tokens.UserToken(context.Background(), fixBot)
	env.srv.Expire(old)
	if err := env.platform.Send(context.Background(), chatReply("after refresh")); err != nil {
		t.Fatal(err)
	}
	if got := env.tokens.refreshCount(fixBot); got != 1 {
		t.Errorf("refreshes = %d, want 1", got)
	}
	if got := env.srv.ChatCalls(); got != 2 {
		t.Errorf("chat calls = %d, want 2", got)
	}
	if len(env.srv.Chat()) != 1 {
		t.Errorf("chat = %+v, want the message once", env.srv.Chat())
	}
}

func TestSendChatPermanentWhenTheBotCannotChat(t *testing.T) {
	tests := []struct {
		name  string
		setup func(env *senderEnv)
		want  string
	}{
		{name: "no bot connected", setup: func(env *senderEnv) {
			env.accounts.mu.Lock()
			delete(env.accounts.accounts, fixBot)
			env.accounts.mu.Unlock()
		}, want: "/connect/twitch/bot"},
		{name: "bot grant gone", setup: func(env *senderEnv) {
			env.tokens.mu.Lock()
			delete(env.tokens.access, fixBot)
			env.tokens.mu.Unlock()
		}, want: "not connected"},
		{name: "bot token lacks user:write:chat even after refresh", setup: func(env *senderEnv) {
			env.tokens.connect(fixBot, "user:read:chat")
		}, want: "user:write:chat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSenderEnv(t)
			tt.setup(env)
			err := env.platform.Send(context.Background(), chatReply("hello"))
			if outcome, _ := sendOutcome(err); outcome != "permanent" || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Send = %v (%s), want permanent mentioning %q", err, outcome, tt.want)
			}
		})
	}
}

func TestSendChatAccountsUnreadableIsTransient(t *testing.T) {
	env := newSenderEnv(t)
	env.accounts.fail = errors.New("database down")
	if outcome, _ := sendOutcome(env.platform.Send(context.Background(), chatReply("hello"))); outcome != "failure" {
		t.Fatalf("outcome = %s, want failure (retried)", outcome)
	}
}

func TestSendPrivateWhispers(t *testing.T) {
	env := newSenderEnv(t)
	r := chatReply("just for you")
	r.Visibility = schemas.VisibilityPrivate
	if err := env.platform.Send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	w := env.srv.Whispers()
	if len(w) != 1 || w[0].FromUserID != fixBot || w[0].ToUserID != fixChatter || w[0].Text != "just for you" {
		t.Fatalf("whispers = %+v", w)
	}
	if len(env.srv.Chat()) != 0 {
		t.Errorf("a private reply went to chat: %+v", env.srv.Chat())
	}
}

func TestSendShoutout(t *testing.T) {
	tests := []struct {
		name          string
		botModerator  bool
		data          schemas.PlatformAction
		wantModerator string
	}{
		{name: "bot moderates: bot gives it", botModerator: true,
			data: schemas.PlatformAction{Action: schemas.ActionShoutout, TargetUserID: fixFriend}, wantModerator: fixBot},
		{name: "bot is no moderator: broadcaster gives it",
			data: schemas.PlatformAction{Action: schemas.ActionShoutout, TargetUserID: fixFriend}, wantModerator: fixBroadcaster},
		{name: "login resolved through Get Users",
			data: schemas.PlatformAction{Action: schemas.ActionShoutout, TargetLogin: "Friend"}, wantModerator: fixBroadcaster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSenderEnv(t)
			env.setBotModerator(tt.botModerator)
			r := chatReply("")
			r.Action, r.ActionData = schemas.ActionShoutout, &tt.data
			if err := env.platform.Send(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got := env.srv.Shoutouts()
			if len(got) != 1 || got[0].FromBroadcasterID != fixBroadcaster || got[0].ToBroadcasterID != fixFriend ||
				got[0].ModeratorID != tt.wantModerator {
				t.Fatalf("shoutouts = %+v, want %s → %s by %s", got, fixBroadcaster, fixFriend, tt.wantModerator)
			}
		})
	}
}

func TestSendShoutoutFallsBackWhenTheBotLostModerator(t *testing.T) {
	env := newSenderEnv(t)
	env.setBotModerator(true)
	env.srv.SetModerator(fixBroadcaster, fixBot, false) // Twitch knows; our account does not yet
	r := chatReply("")
	r.Action, r.ActionData = schemas.ActionShoutout, &schemas.PlatformAction{Action: schemas.ActionShoutout, TargetUserID: fixFriend}
	if err := env.platform.Send(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := env.srv.Shoutouts(); len(got) != 1 || got[0].ModeratorID != fixBroadcaster {
		t.Fatalf("shoutouts = %+v, want one by the broadcaster", got)
	}
}

func TestSendShoutoutUnknownLoginIsPermanent(t *testing.T) {
	env := newSenderEnv(t)
	r := chatReply("")
	r.Action, r.ActionData = schemas.ActionShoutout, &schemas.PlatformAction{Action: schemas.ActionShoutout, TargetLogin: "nobody"}
	if outcome, _ := sendOutcome(env.platform.Send(context.Background(), r)); outcome != "permanent" {
		t.Fatalf("outcome = %s, want permanent", outcome)
	}
}

func TestSendModerationActions(t *testing.T) {
	env := newSenderEnv(t)
	env.setBotModerator(true)
	timeout := chatReply("")
	timeout.Action = schemas.ActionTimeout
	timeout.ActionData = &schemas.PlatformAction{Action: schemas.ActionTimeout, TargetLogin: "chatter", DurationSeconds: 60, Reason: "spam"}
	if err := env.platform.Send(context.Background(), timeout); err != nil {
		t.Fatal(err)
	}
	if got := env.srv.Bans(); len(got) != 1 || got[0].UserID != fixChatter || got[0].DurationSeconds != 60 ||
		got[0].ModeratorID != fixBot || got[0].Reason != "spam" {
		t.Fatalf("bans = %+v", got)
	}

	del := chatReply("")
	del.Action = schemas.ActionDelete
	del.ActionData = &schemas.PlatformAction{Action: schemas.ActionDelete, MessageID: "bad-msg"}
	if err := env.platform.Send(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	if got := env.srv.DeletedMessages(); len(got) != 1 || got[0].MessageID != "bad-msg" || got[0].ModeratorID != fixBot {
		t.Fatalf("deleted = %+v", got)
	}

	// Delete without a message id would clear the whole chat.
	del.ActionData = &schemas.PlatformAction{Action: schemas.ActionDelete}
	if outcome, _ := sendOutcome(env.platform.Send(context.Background(), del)); outcome != "permanent" {
		t.Fatalf("delete without message id: outcome %s, want permanent", outcome)
	}
}

func TestBudgetFor(t *testing.T) {
	tests := []struct {
		name  string
		setup func(env *senderEnv)
		want  int
	}{
		{name: "moderator", setup: func(env *senderEnv) { env.setBotModerator(true) }, want: 100},
		{name: "not moderator", setup: func(env *senderEnv) { env.setBotModerator(false) }, want: 20},
		{name: "accounts unreadable", setup: func(env *senderEnv) { env.accounts.fail = errors.New("down") }, want: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newSenderEnv(t)
			tt.setup(env)
			if got := env.platform.BudgetFor(20, 100)(context.Background(), chatReply("x")); got != tt.want {
				t.Fatalf("budget = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSenderFollowsAReplacedBot: a bot account replaced since it was
// cached does not cost a reply; the next send goes out as the new bot.
func TestSenderFollowsAReplacedBot(t *testing.T) {
	env := newSenderEnv(t)
	if err := env.platform.Send(t.Context(), chatReply("first")); err != nil {
		t.Fatal(err)
	}
	const newBot = "5005"
	env.srv.AddUser(twitchtest.User{ID: newBot, Login: "waddlebot2"})
	env.tokens.connect(newBot, fixBotScopes...)
	env.tokens.mu.Lock()
	delete(env.tokens.access, fixBot)
	delete(env.tokens.scopes, fixBot)
	env.tokens.mu.Unlock()
	env.accounts.mu.Lock()
	delete(env.accounts.accounts, fixBot)
	env.accounts.mu.Unlock()
	env.accounts.put(twitch.Account{UserID: newBot, Login: "waddlebot2", Kind: twitch.KindBot})

	if err := env.platform.Send(t.Context(), chatReply("second")); err != nil {
		t.Fatalf("send after the bot was replaced: %v", err)
	}
	sent := env.srv.Chat()
	if len(sent) != 2 || sent[1].SenderID != newBot || sent[1].Text != "second" {
		t.Fatalf("sent %+v; want the second message from the new bot %s", sent, newBot)
	}
}
