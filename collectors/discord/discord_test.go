package discord_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
)

func TestNewSessionTalksToTheEndpoints(t *testing.T) {
	srv := discordtest.New(t)
	tests := []struct{ name, token string }{
		{name: "bare token", token: srv.BotToken},
		{name: "with its prefix", token: "Bot " + srv.BotToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := discord.NewSession(tt.token, discord.Endpoints{API: srv.APIURL() + "/"}, &http.Client{})
			if err != nil {
				t.Fatal(err)
			}
			// discordgo builds this URL on https://discord.com/api/v9: it
			// reaches the fake only through the rewrite.
			me, err := s.User("@me")
			if err != nil {
				t.Fatal(err)
			}
			if me.ID != srv.AppID || !me.Bot {
				t.Fatalf("@me = %+v", me)
			}
		})
	}
}

func TestNewSessionRefuses(t *testing.T) {
	tests := []struct {
		name, token string
		ep          discord.Endpoints
	}{
		{name: "no token", token: " "},
		{name: "API not a URL", token: "t", ep: discord.Endpoints{API: "not a url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := discord.NewSession(tt.token, tt.ep, nil); err == nil {
				t.Fatal("NewSession accepted it")
			}
		})
	}
}

func TestNewSessionDefaultEndpointLeavesDiscordAlone(t *testing.T) {
	s, err := discord.NewSession("t", discord.Endpoints{API: discord.DefaultAPIURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Only the global rate limiter sits in front of the default transport.
	if s.Client == nil || fmt.Sprintf("%T", s.Client.Transport) != "*discord.limited" {
		t.Fatalf("transport %T, want the limiter only for Discord itself", s.Client.Transport)
	}
	if s.Token != "Bot t" || s.Identify.Token != "Bot t" {
		t.Fatalf("token %q / identify %q, want the Bot prefix", s.Token, s.Identify.Token)
	}
}
