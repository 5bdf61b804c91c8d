package main

import (
	"testing"

	"github.com/waddlebot/waddlebot/internal/config"
)

func TestPortalProvidersReuseThePlatformApps(t *testing.T) {
	c := config.Defaults()
	c.TwitchClientID, c.TwitchClientSecret = "tw", "tws"
	c.DiscordAppID = "dc" // no secret: not offered
	c.SlackClientID, c.SlackClientSecret = "sl", "sls"
	got := portalProviders(parsed{Loaded: config.Loaded{Config: c}})
	if got.Twitch.AuthorizeURL != "https://id.twitch.tv/oauth2/authorize" || got.Twitch.TokenURL != "https://id.twitch.tv/oauth2/token" ||
		got.Twitch.UserInfoURL != "https://api.twitch.tv/helix/users" {
		t.Errorf("twitch %+v", got.Twitch)
	}
	if got.Discord.ClientID != "" {
		t.Errorf("discord offered without a secret: %+v", got.Discord)
	}
	c.DiscordClientSecret = "dcs"
	got = portalProviders(parsed{Loaded: config.Loaded{Config: c}})
	if got.Discord.AuthorizeURL != "https://discord.com/oauth2/authorize" || got.Discord.UserInfoURL != "https://discord.com/api/v9/users/@me" {
		t.Errorf("discord %+v", got.Discord)
	}
	if got.Slack.AuthorizeURL != "https://slack.com/openid/connect/authorize" || got.Slack.TokenURL != "https://slack.com/api/openid.connect.token" ||
		got.Slack.UserInfoURL != "https://slack.com/api/openid.connect.userInfo" {
		t.Errorf("slack %+v", got.Slack)
	}
	if l := splitList(" twitch:1, ,discord:2"); len(l) != 2 || l[0] != "twitch:1" || l[1] != "discord:2" {
		t.Errorf("splitList %q", l)
	}
}
