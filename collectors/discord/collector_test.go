package discord_test

import (
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/conformance"
	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// collectorRig is one Discord collector replica (the real Collector)
// against the fake, in a guild with one text channel.
type collectorRig struct {
	fake    *discordtest.Server
	guild   discordtest.Guild
	channel string
}

func startCollector(t *testing.T, conn *natsx.Conn, st *store.Store, channelID string) *collectorRig {
	t.Helper()
	fake := discordtest.New(t)
	guild := discordtest.Guild{ID: "200000000000000777", Name: "Conformance", OwnerID: "400000000000000777",
		Roles:    []discordtest.Role{{ID: "200000000000000777", Name: "@everyone", Permissions: 1 << 11}},
		Channels: []discordtest.Channel{{ID: channelID, Name: "general"}}}
	fake.AddGuild(guild)
	c, err := discord.New(t.Context(), discord.Config{
		BotToken: fake.BotToken, AppID: fake.AppID, Endpoints: discord.Endpoints{API: fake.APIURL()},
		Backoff: []time.Duration{20 * time.Millisecond}, Conn: conn, Store: st, Holder: "conformance",
		Logger: logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	conformance.StartParts(t, "discord collector", c.RunIntake, c.Sender().Run)
	natstest.Eventually(t, 20*time.Second, "the sender ready and the gateway connected", func() bool {
		return c.Sender().Ready() && len(fake.Connections()) == 1
	})
	return &collectorRig{fake: fake, guild: guild, channel: channelID}
}

func (r *collectorRig) say(id string, author discordtest.User, text string) {
	r.fake.Dispatch("MESSAGE_CREATE", discordtest.MessageCreate(discordtest.Message{ID: id, ChannelID: r.channel,
		GuildID: r.guild.ID, Author: author, Content: text}))
}

type conformanceHarness struct{ r *collectorRig }

func (h *conformanceHarness) Platform() string { return schemas.PlatformDiscord }

func (h *conformanceHarness) Start(t *testing.T, conn *natsx.Conn, budget int, window time.Duration) {
	t.Helper()
	h.r = startCollector(t, conn, storetest.New(t), "c0nf_chan-1")
	// Discord's own per-route limit stands in for the budget: the fake
	// answers 429 past it, as Discord does, and the sender must wait.
	h.r.fake.SetBucketLimit(budget, window)
}

func (h *conformanceHarness) InjectChat(t *testing.T, msg conformance.ChatMessage) {
	author := discordtest.User{ID: msg.UserID, Username: msg.Login}
	if msg.FromBot {
		author = discordtest.User{ID: h.r.fake.AppID, Username: "waddlebot", Bot: true}
	}
	h.r.say(msg.ID, author, msg.Text)
}

func (h *conformanceHarness) Sent() []conformance.SentMessage {
	var out []conformance.SentMessage
	for _, m := range h.r.fake.Messages() {
		out = append(out, conformance.SentMessage{ChannelID: m.ChannelID, Text: m.Content})
	}
	return out
}

func (h *conformanceHarness) FailNextSends(n int) { h.r.fake.FailNext(n, 503) }

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &conformanceHarness{} })
}

// TestPingThroughDiscord: a message in a guild channel → router and core
// → pong as a reply to it, with mentions locked.
func TestPingThroughDiscord(t *testing.T) {
	t.Parallel()
	p := pipelinetest.Start(t, pipelinetest.Options{})
	r := startCollector(t, p.Env.Connect(t), p.Store, "600000000000000777")
	r.say("700000000000000777", discordtest.User{ID: "410000000000000777", Username: "alice"}, "!ping")
	var sent []discordtest.SentMessage
	natstest.Eventually(t, 20*time.Second, "pong in the channel", func() bool {
		sent = r.fake.Messages()
		return len(sent) > 0
	})
	m := sent[0]
	if m.Content != "pong" || m.ChannelID != r.channel || m.Reference == nil || m.Reference.MessageID != "700000000000000777" {
		t.Fatalf("sent %+v; want pong replying to the message", m)
	}
	if m.AllowedMentions == nil || m.Nonce == "" || !m.EnforceNonce {
		t.Fatalf("sent without locked mentions or an enforced nonce: %s", m.Body)
	}
}

// TestSlashCommandThroughDiscord: /waddlebot command:ping is deferred at
// once and completed through the interaction with the router's and core's
// answer.
func TestSlashCommandThroughDiscord(t *testing.T) {
	t.Parallel()
	p := pipelinetest.Start(t, pipelinetest.Options{})
	r := startCollector(t, p.Env.Connect(t), p.Store, "600000000000000778")
	r.fake.Dispatch("INTERACTION_CREATE", discordtest.InteractionCreate(r.fake.AppID, discordtest.Interaction{
		ID: "730000000000000778", Token: "tok-ping", GuildID: r.guild.ID, ChannelID: r.channel,
		User: discordtest.User{ID: "410000000000000778", Username: "bob"}, Command: "ping"}))
	var done []discordtest.WebhookMessage
	natstest.Eventually(t, 20*time.Second, "the deferred interaction completed", func() bool {
		done = r.fake.Followups()
		return len(done) > 0
	})
	cbs := r.fake.Callbacks()
	if len(cbs) != 1 || cbs[0].Type != 5 || cbs[0].Token != "tok-ping" {
		t.Fatalf("callbacks %+v; want one deferral (type 5) of tok-ping", cbs)
	}
	if done[0].Content != "pong" || done[0].Token != "tok-ping" || done[0].AllowedMentions == nil {
		t.Fatalf("follow-up %+v; want pong through tok-ping with locked mentions", done[0])
	}
	if n := len(r.fake.Messages()); n != 0 {
		t.Fatalf("%d channel messages besides the interaction's answer", n)
	}
}
