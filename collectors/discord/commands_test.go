package discord_test

import (
	"testing"

	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
)

func TestRegisterCommandsIsABulkOverwrite(t *testing.T) {
	srv := discordtest.New(t)
	session := sndSession(t, srv, srv.BotToken)
	for range 2 {
		if err := discord.RegisterCommands(t.Context(), session, srv.AppID); err != nil {
			t.Fatal(err)
		}
	}
	if puts := srv.CommandPuts(); puts != 2 {
		t.Fatalf("bulk overwrites = %d, want 2", puts)
	}
	cmds := srv.Commands()
	if len(cmds) != 1 || cmds[0].Name != discord.CommandName || cmds[0].Description == "" {
		t.Fatalf("commands = %+v, want /waddlebot only", cmds)
	}
	want := []discordtest.CommandOption{
		{Type: 3, Name: "command", Required: true, Autocomplete: true},
		{Type: 3, Name: "args"},
	}
	got := cmds[0].Options
	if len(got) != len(want) {
		t.Fatalf("options = %+v, want %+v", got, want)
	}
	for i := range want {
		g := got[i]
		g.Description = ""
		if g != want[i] || got[i].Description == "" {
			t.Errorf("option %d = %+v, want %+v with a description", i, got[i], want[i])
		}
	}
}
