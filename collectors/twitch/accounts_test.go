package twitch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/store"
)

func TestAccountsStore(t *testing.T) {
	ctx := context.Background()
	e := newConnectEnv(t, false)
	e.connect(t, tokPenguin, twitch.KindBroadcaster, time.Hour, "user:read:chat")
	e.connect(t, tokPuffin, twitch.KindBroadcaster, time.Hour, "user:read:chat")
	e.connect(t, tokBot, twitch.KindBot, time.Hour, "user:write:chat")

	ids := func(kind string) []string {
		t.Helper()
		accounts, err := e.accounts.Connected(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range accounts {
			out = append(out, a.UserID)
		}
		return out
	}
	if got := ids(twitch.KindBroadcaster); !sameSet(got, []string{tokPenguin.ID, tokPuffin.ID}) {
		t.Fatalf("broadcasters = %v", got)
	}
	if got := ids(""); len(got) != 3 {
		t.Fatalf("all connected = %v", got)
	}

	if err := e.accounts.SetBotIsModerator(ctx, tokPenguin.ID, true); err != nil {
		t.Fatal(err)
	}
	if !e.account(t, tokPenguin.ID).BotIsModerator {
		t.Fatal("moderator flag not stored")
	}
	if err := e.accounts.SetStatus(ctx, tokPuffin.ID, twitch.StatusDisconnected, "revoked in settings"); err != nil {
		t.Fatal(err)
	}
	if a := e.account(t, tokPuffin.ID); a.Status != twitch.StatusDisconnected || a.Error != "revoked in settings" {
		t.Fatalf("puffin = %+v", a)
	}
	if got := ids(twitch.KindBroadcaster); !sameSet(got, []string{tokPenguin.ID}) {
		t.Fatalf("broadcasters after disconnect = %v", got)
	}

	// Reconnecting clears the error and keeps the moderator flag.
	e.connect(t, tokPuffin, twitch.KindBroadcaster, time.Hour, "user:read:chat")
	if a := e.account(t, tokPuffin.ID); a.Status != twitch.StatusConnected || a.Error != "" {
		t.Fatalf("puffin reconnected = %+v", a)
	}
	e.connect(t, tokPenguin, twitch.KindBroadcaster, time.Hour, "user:read:chat")
	if !e.account(t, tokPenguin.ID).BotIsModerator {
		t.Fatal("reconnecting lost the moderator flag")
	}

	// Another bot account replaces the first.
	other := twitchtest.User{ID: "2002", Login: "waddlebot2"}
	e.connect(t, other, twitch.KindBot, time.Hour, "user:write:chat")
	if got := ids(twitch.KindBot); !sameSet(got, []string{other.ID}) {
		t.Fatalf("bots = %v", got)
	}
	if a := e.account(t, tokBot.ID); a.Status != twitch.StatusDisconnected || a.Error == "" {
		t.Fatalf("replaced bot = %+v", a)
	}

	for name, err := range map[string]error{
		"status of unknown":    e.accounts.SetStatus(ctx, "404", twitch.StatusDisconnected, ""),
		"moderator of unknown": e.accounts.SetBotIsModerator(ctx, "404", true),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if err := e.accounts.SetStatus(ctx, tokPenguin.ID, "sleeping", ""); err == nil {
		t.Error("an unknown status was accepted")
	}
	if err := e.accounts.Save(ctx, twitch.Account{UserID: "9", Kind: "moderator"}, twitch.OAuthToken{}); err == nil {
		t.Error("an unknown kind was accepted")
	}
}
