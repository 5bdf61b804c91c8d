package discord_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const (
	sndGuild   = "200000000000000001"
	sndChannel = "200000000000000002"
	sndUser    = "200000000000000003"
	sndMessage = "200000000000000004"
)

// sndEnv is a Platform against the fake REST API, with interactions kept
// in an embedded NATS.
type sndEnv struct {
	srv          *discordtest.Server
	session      *discordgo.Session
	interactions *collectors.Interactions
	platform     *discord.Platform
}

func newSndEnv(t *testing.T) *sndEnv {
	t.Helper()
	srv := discordtest.New(t)
	session := sndSession(t, srv, srv.BotToken)
	nats := natstest.Start(t, nil)
	interactions, err := collectors.OpenInteractions(t.Context(), nats.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	platform, err := discord.NewPlatform(discord.PlatformConfig{
		Session: session, AppID: srv.AppID, Interactions: interactions,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &sndEnv{srv: srv, session: session, interactions: interactions, platform: platform}
}

func sndSession(t *testing.T, srv *discordtest.Server, token string) *discordgo.Session {
	t.Helper()
	s, err := discord.NewSession(token, discord.Endpoints{API: srv.APIURL()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sndReply is a public reply to a message in sndChannel.
func sndReply(text string) *schemas.Reply {
	return &schemas.Reply{
		Version: schemas.Version, ID: uuid.NewString(), InvocationID: uuid.NewString(),
		EventID: schemas.EventID(schemas.PlatformDiscord, sndMessage),
		Target: schemas.Target{Platform: schemas.PlatformDiscord, ServerID: sndGuild, ChannelID: sndChannel,
			ReplyToID: sndMessage, UserID: sndUser},
		Text: text, Part: 1, Parts: 1, Visibility: schemas.VisibilityPublic, Action: schemas.ActionMessage,
		CreatedAt: time.Now(),
	}
}

// sndDeferred plays the gateway's part of a slash command: the deferred
// response at the fake and the interaction kept for the reply's event.
func (e *sndEnv) sndDeferred(t *testing.T, eventID, token string, ephemeral bool) {
	t.Helper()
	resp := &discordgo.InteractionResponse{Type: discordgo.InteractionResponseDeferredChannelMessageWithSource,
		Data: &discordgo.InteractionResponseData{}}
	if ephemeral {
		resp.Data.Flags = discordgo.MessageFlagsEphemeral
	}
	in := &discordgo.Interaction{ID: "200000000000000099", AppID: e.srv.AppID, Token: token}
	if err := e.session.InteractionRespond(in, resp); err != nil {
		t.Fatal(err)
	}
	err := e.interactions.Put(t.Context(), schemas.PlatformDiscord, eventID,
		collectors.Interaction{AppID: e.srv.AppID, Token: token, Ephemeral: ephemeral})
	if err != nil {
		t.Fatal(err)
	}
}

// sndOutcome names how the consume loop treats a Send error.
func sndOutcome(err error) (string, time.Duration) { return consume.Outcome(err) }

func discordInteraction(appID, token string) collectors.Interaction {
	return collectors.Interaction{AppID: appID, Token: token}
}
