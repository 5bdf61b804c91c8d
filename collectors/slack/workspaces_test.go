package slack

import (
	"errors"
	"testing"
)

func TestStaticTokenServesItsOwnWorkspace(t *testing.T) {
	rig := sndNewRig(t, "xoxb-static")
	rig.fake.identity("xoxb-static", sndIdentity{TeamID: "TS", TeamName: "Static", UserID: "UBOT"})
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	ctx := t.Context()

	tests := []struct {
		team, wantToken, wantUser string
		wantErr                   error
	}{
		{team: "TS", wantToken: "xoxb-static", wantUser: "UBOT"},
		{team: "", wantToken: "xoxb-static", wantUser: "UBOT"},
		{team: "T1", wantToken: "xoxb-one", wantUser: "BT1"},
		{team: "T9", wantErr: ErrNotInstalled},
	}
	for _, tt := range tests {
		token, err := rig.workspaces.BotToken(ctx, tt.team)
		if token != tt.wantToken || !errors.Is(err, tt.wantErr) {
			t.Errorf("BotToken(%q) = %q, %v; want %q, %v", tt.team, token, err, tt.wantToken, tt.wantErr)
		}
		user, err := rig.workspaces.BotUserID(ctx, tt.team)
		if user != tt.wantUser || !errors.Is(err, tt.wantErr) {
			t.Errorf("BotUserID(%q) = %q, %v; want %q, %v", tt.team, user, err, tt.wantUser, tt.wantErr)
		}
	}
	if n := len(rig.fake.seen("auth.test")); n != 1 {
		t.Errorf("auth.test calls = %d, want 1 (the answer is kept)", n)
	}

	// A reply to the static workspace goes out with the static token.
	if err := rig.platform.Send(ctx, sndReply("TS", "hello")); err != nil {
		t.Fatal(err)
	}
	if calls := rig.fake.seen("chat.postMessage"); len(calls) != 1 || calls[0].Token != "xoxb-static" {
		t.Fatalf("chat.postMessage = %+v, want one with the static token", calls)
	}

	// Once its workspace is disconnected, the static token is not used.
	if err := rig.workspaces.Disconnect(ctx, "TS", "tokens_revoked"); err != nil {
		t.Fatal(err)
	}
	if _, err := rig.workspaces.BotToken(ctx, "TS"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("BotToken(TS) after Disconnect = %v, want ErrNotInstalled", err)
	}
	if _, err := rig.workspaces.BotToken(ctx, "T1"); err != nil {
		t.Errorf("another workspace lost its token: %v", err)
	}
}

func TestStaticTokenRefusedByAuthTestIsNotUsed(t *testing.T) {
	rig := sndNewRig(t, "xoxb-revoked") // the fake knows no such token: invalid_auth
	for range 2 {
		if _, err := rig.workspaces.BotToken(t.Context(), "TS"); !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("BotToken = %v, want ErrNotInstalled", err)
		}
	}
	if n := len(rig.fake.seen("auth.test")); n != 1 {
		t.Errorf("auth.test calls = %d, want 1", n)
	}
}

func TestBotUserIDAsksAuthTestWhenTheInstallDidNotSay(t *testing.T) {
	rig := sndNewRig(t, "")
	rig.fake.identity("xoxb-one", sndIdentity{TeamID: "T1", UserID: "UFROMAUTH"})
	if err := rig.workspaces.Save(t.Context(), Workspace{TeamID: "T1", TeamName: "One"}, "xoxb-one"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := rig.workspaces.BotUserID(t.Context(), "T1"); got != "UFROMAUTH" || err != nil {
			t.Fatalf("BotUserID = %q, %v; want UFROMAUTH", got, err)
		}
	}
	if calls := rig.fake.seen("auth.test"); len(calls) != 1 || calls[0].Token != "xoxb-one" {
		t.Errorf("auth.test calls = %+v, want one with the team's token (then remembered)", calls)
	}
}

func TestDisconnectAndReinstall(t *testing.T) {
	rig := sndNewRig(t, "")
	ctx := t.Context()
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	for range 2 { // idempotent: app_uninstalled and tokens_revoked may both arrive
		if err := rig.workspaces.Disconnect(ctx, "T1", "app_uninstalled"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rig.workspaces.BotUserID(ctx, "T1"); !errors.Is(err, ErrNotInstalled) {
		t.Errorf("BotUserID after Disconnect = %v, want ErrNotInstalled", err)
	}
	sndInstall(t, rig.workspaces, "T1", "xoxb-new")
	if token, err := rig.workspaces.BotToken(ctx, "T1"); token != "xoxb-new" || err != nil {
		t.Errorf("BotToken after reinstall = %q, %v", token, err)
	}
	ws, err := rig.workspaces.Workspace(ctx, "T1")
	if err != nil || ws.Status != StatusInstalled || ws.Reason != "" {
		t.Errorf("workspace after reinstall = %+v, %v", ws, err)
	}
}
