package discord_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestGatewayIdentifiesAndPublishesMessages(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 0)
	e.connected(t, 1)

	ids := e.fake.Identifies()
	if len(ids) != 1 {
		t.Fatalf("identifies = %d, want 1", len(ids))
	}
	want := discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsDirectMessages |
		discordgo.IntentsMessageContent | discordgo.IntentsGuildMembers | discordgo.IntentsGuildBans
	if got := ids[0]; got.Intents != int64(want) || got.Shard != [2]int{0, 1} {
		t.Errorf("identify = %+v, want intents %d, shard [0 1]", got, want)
	}

	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000001", gwAlice, "hello"))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000002", gwAlice, "!ping as mod", gwModRole))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000003", gwAlice, "as admin", gwAdminRole))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000004", gwOwner, "as owner"))
	// Dropped: the bot's own message, another bot's.
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000005", discordtest.User{ID: e.fake.AppID, Username: "WaddleBot", Bot: true}, "my reply"))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("700000000000000006", gwOther, "beep"))
	e.fake.Dispatch("MESSAGE_CREATE", discordtest.MessageCreate(discordtest.Message{ID: "700000000000000007",
		ChannelID: gwThreadID, GuildID: gwGuildID, Author: gwAlice, Content: "in a thread"}))
	// Last, so when it is published everything before was handled.
	e.fake.Dispatch("MESSAGE_CREATE", discordtest.MessageCreate(discordtest.Message{ID: "700000000000000008",
		ChannelID: "800000000000000001", Author: gwAlice, Content: "a DM"}))

	evs := e.waitEvents(t, 6)
	byText := map[string]schemas.Event{}
	for _, ev := range evs {
		byText[ev.Text] = ev
	}
	tests := []struct {
		text, messageID, channel, channelName, server, thread string
		role                                                  schemas.Role
	}{
		{"hello", "700000000000000001", gwChannelID, "general", gwGuildID, "", schemas.RoleMember},
		{"!ping as mod", "700000000000000002", gwChannelID, "general", gwGuildID, "", schemas.RoleModerator},
		{"as admin", "700000000000000003", gwChannelID, "general", gwGuildID, "", schemas.RoleModerator},
		{"as owner", "700000000000000004", gwChannelID, "general", gwGuildID, "", schemas.RoleBroadcaster},
		{"in a thread", "700000000000000007", gwThreadID, "a thread", gwGuildID, gwThreadID, schemas.RoleMember},
		{"a DM", "700000000000000008", "800000000000000001", "", "", "", schemas.RoleMember},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			ev, ok := byText[tt.text]
			if !ok {
				t.Fatalf("no event for %q in %v", tt.text, gwTexts(evs))
			}
			if ev.ID != schemas.EventID("discord", tt.messageID) || ev.Kind != schemas.KindChat || ev.ReplyToID != tt.messageID {
				t.Errorf("id/kind/reply = %s/%s/%s, want %s/chat/%s", ev.ID, ev.Kind, ev.ReplyToID, schemas.EventID("discord", tt.messageID), tt.messageID)
			}
			if ev.Channel != (schemas.Channel{ID: tt.channel, Name: tt.channelName, ServerID: tt.server}) || ev.ThreadID != tt.thread {
				t.Errorf("channel = %+v thread %q", ev.Channel, ev.ThreadID)
			}
			if !slices.Equal(ev.User.Roles, []schemas.Role{tt.role}) || ev.User.ID != gwAlice.ID && ev.User.ID != gwOwnerID {
				t.Errorf("user = %+v, want role %s", ev.User, tt.role)
			}
		})
	}
}

func TestGatewayHeartbeats(t *testing.T) {
	e := gwStart(t)
	e.fake.SetHeartbeatInterval(20 * time.Millisecond)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	natstest.Eventually(t, 10*time.Second, "three heartbeats", func() bool { return e.fake.Heartbeats() >= 3 })
	// The acks kept the session alive: no reconnection.
	if n := len(e.fake.Identifies()); n != 1 || e.fake.Resumes() != 0 {
		t.Errorf("identifies %d resumes %d, want 1 and 0", n, e.fake.Resumes())
	}
}

func TestGatewayResumesAfterADroppedSocket(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("710000000000000001", gwAlice, "before"))
	e.waitEvents(t, 1)

	e.fake.DropConnection()
	// Sent while the client is away: kept in the session, replayed on
	// resume.
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("710000000000000002", gwAlice, "during 1"))
	e.fake.Dispatch("GUILD_BAN_ADD", discordtest.BanAdd(gwGuildID, gwOther))
	natstest.Eventually(t, 15*time.Second, "a resume", func() bool { return e.fake.Resumes() == 1 })
	e.connected(t, 1)
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("710000000000000003", gwAlice, "after"))

	evs := e.waitEvents(t, 4)
	if got := gwTexts(evs); !slices.Equal(got, []string{"", "after", "before", "during 1"}) {
		t.Errorf("texts = %q", got)
	}
	if n := len(e.fake.Identifies()); n != 1 {
		t.Errorf("identifies = %d, want 1 (resumed, not identified again)", n)
	}
	if n := e.fake.RefusedResumes(); n != 0 {
		t.Errorf("%d resumes sent to the main gateway URL, want them on resume_gateway_url", n)
	}
}

func TestGatewayDoesNotReconnectAfterItStopped(t *testing.T) {
	// A lost lease ends the shard's context the way stopping does: from
	// then on the replica must not connect the shard again, even though
	// the socket dropped while the gateway was refusing connections (the
	// case where discordgo's own reconnect loop would carry on).
	e := gwStart(t)
	stop := e.run(t, "replica-a", 1)
	e.connected(t, 1)
	e.fake.RefuseGateway(true)
	e.fake.DropConnection()
	natstest.Eventually(t, 10*time.Second, "a reconnection attempt", func() bool { return e.fake.GatewayAttempts() >= 2 })
	stop()
	e.fake.RefuseGateway(false)
	attempts := e.fake.GatewayAttempts()
	// discordgo's loop retried after 1, 2, 4 s: 5 s shows whether one
	// goes on.
	time.Sleep(5 * time.Second)
	if n := e.fake.GatewayAttempts(); n != attempts || len(e.fake.Connections()) != 0 {
		t.Errorf("after the shard stopped: %d more connection attempts, %d connections; want none",
			n-attempts, len(e.fake.Connections()))
	}
}

func TestGatewayPublishesATimeoutOnce(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	until := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, nil, until))
	// During the timeout: a role change carries the same end; then the
	// timeout is extended (a new one).
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, []string{gwModRole}, until))
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, []string{gwModRole}, until.Add(time.Hour)))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("770000000000000001", gwAlice, "sentinel"))
	e.waitEvents(t, 3)
	if n := e.publishedKind(schemas.KindTimeout); n != 2 {
		t.Errorf("timeouts published %d times, want 2 (the first, the extension)", n)
	}
}

func TestGatewayDefersWhileTheCatalogueHangs(t *testing.T) {
	// The catalogue never answers (a database that hangs, ignoring the
	// context): the deferral still goes, public since nothing says the
	// command is private.
	e := gwStart(t)
	release := make(chan struct{})
	e.catalogue = func(context.Context) ([]schemas.Manifest, error) {
		<-release
		return gwCatalogue, nil
	}
	e.run(t, "replica-a", 1)
	// Before the gateway stops (cleanups run last first): Run waits for
	// the read.
	t.Cleanup(func() { close(release) })
	e.connected(t, 1)
	e.fake.Dispatch("INTERACTION_CREATE", discordtest.InteractionCreate(e.fake.AppID, discordtest.Interaction{
		ID: "780000000000000001", Token: "tok-hang", GuildID: gwGuildID, ChannelID: gwChannelID, User: gwAlice,
		Command: "secret"}))
	natstest.Eventually(t, 10*time.Second, "the deferral", func() bool { return len(e.fake.Callbacks()) == 1 })
	if cb := e.fake.Callbacks()[0]; cb.Type != 5 || cb.Flags != 0 {
		t.Errorf("callback = type %d flags %d, want a public deferral (5, 0)", cb.Type, cb.Flags)
	}
	if evs := e.waitEvents(t, 1); evs[0].Text != "secret" {
		t.Errorf("event = %+v", evs[0])
	}
}

func TestGatewayMembersBansTimeouts(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	joined := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e.fake.Dispatch("GUILD_MEMBER_ADD", discordtest.MemberAdd(gwGuildID, gwAlice, joined))
	e.fake.Dispatch("GUILD_BAN_ADD", discordtest.BanAdd(gwGuildID, gwOther))
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, nil, time.Now().Add(10*time.Minute)))
	// Not timeouts: a role change, a timeout that already ended.
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, []string{gwModRole}, time.Time{}))
	e.fake.Dispatch("GUILD_MEMBER_UPDATE", discordtest.MemberUpdate(gwGuildID, gwAlice, nil, time.Now().Add(-time.Minute)))
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("720000000000000001", gwAlice, "sentinel"))

	evs := e.waitEvents(t, 4)
	kinds := map[schemas.Kind]schemas.Event{}
	for _, ev := range evs {
		kinds[ev.Kind] = ev
		if ev.Channel.ServerID != gwGuildID {
			t.Errorf("%s event in server %q", ev.Kind, ev.Channel.ServerID)
		}
	}
	if j := kinds[schemas.KindJoin]; j.User.ID != gwAlice.ID || !j.OccurredAt.Equal(joined) || j.Channel.ID != gwGuildID {
		t.Errorf("join = %+v", j)
	}
	if b := kinds[schemas.KindBan]; b.Data == nil || b.Data.Target == nil || b.Data.Target.ID != gwOther.ID {
		t.Errorf("ban = %+v", b)
	}
	if to := kinds[schemas.KindTimeout]; to.Data == nil || to.Data.Target == nil || to.Data.Target.ID != gwAlice.ID ||
		to.Data.DurationSeconds < 590 || to.Data.DurationSeconds > 600 {
		t.Errorf("timeout = %+v data %+v", to, to.Data)
	}
}

func TestGatewayDefersInteractions(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	tests := []struct {
		name, id, token, command, args string
		wantFlags                      int
		wantText                       string
	}{
		{"public", "730000000000000001", "tok-public", "ping", "", 0, "ping"},
		{"private", "730000000000000002", "tok-private", "secret", "a b", 64, "secret a b"},
	}
	for _, tt := range tests {
		e.fake.Dispatch("INTERACTION_CREATE", discordtest.InteractionCreate(e.fake.AppID, discordtest.Interaction{
			ID: tt.id, Token: tt.token, GuildID: gwGuildID, ChannelID: gwChannelID, User: gwAlice,
			Permissions: 1 << 3, Command: tt.command, Args: tt.args}))
	}
	evs := e.waitEvents(t, len(tests))
	callbacks := e.fake.Callbacks()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev *schemas.Event
			for i := range evs {
				if evs[i].PlatformEventID == tt.id {
					ev = &evs[i]
				}
			}
			if ev == nil || ev.Kind != schemas.KindCommand || ev.Text != tt.wantText ||
				!slices.Equal(ev.User.Roles, []schemas.Role{schemas.RoleModerator}) || ev.Channel.ServerID != gwGuildID {
				t.Fatalf("event = %+v", ev)
			}
			i := slices.IndexFunc(callbacks, func(c discordtest.Callback) bool { return c.Token == tt.token })
			if i < 0 || callbacks[i].Type != 5 || callbacks[i].Flags != tt.wantFlags || callbacks[i].InteractionID != tt.id {
				t.Errorf("callbacks = %+v, want type 5 flags %d for %s", callbacks, tt.wantFlags, tt.token)
			}
			in, ok, err := e.interactions.Get(t.Context(), "discord", ev.ID)
			if err != nil || !ok || in.Token != tt.token || in.AppID != e.fake.AppID || in.Ephemeral != (tt.wantFlags == 64) {
				t.Errorf("interaction = %+v ok %v err %v", in, ok, err)
			}
		})
	}
}

func TestGatewayAutocompletesCommands(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	e.fake.Dispatch("INTERACTION_CREATE", discordtest.InteractionCreate(e.fake.AppID, discordtest.Interaction{
		ID: "740000000000000001", Token: "tok-auto", GuildID: gwGuildID, ChannelID: gwChannelID, User: gwAlice,
		Command: "p", Autocomplete: true}))
	var cb discordtest.Callback
	natstest.Eventually(t, 10*time.Second, "the autocomplete answer", func() bool {
		cbs := e.fake.Callbacks()
		if len(cbs) == 0 {
			return false
		}
		cb = cbs[0]
		return true
	})
	var names []string
	for _, c := range cb.Choices {
		names = append(names, c.Name)
	}
	if cb.Type != 8 || !slices.Equal(names, []string{"ping", "poll"}) {
		t.Errorf("callback = type %d choices %v, want 8 [ping poll]", cb.Type, names)
	}
	// An autocomplete is no command.
	if evs := e.events(t); len(evs) != 0 {
		t.Errorf("events = %+v", evs)
	}
}

func TestGatewayHoldsEachShardOnce(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 2)
	e.run(t, "replica-b", 2)
	e.connected(t, 2)
	shards := e.fake.Connections()
	slices.SortFunc(shards, func(a, b [2]int) int { return a[0] - b[0] })
	if !slices.Equal(shards, [][2]int{{0, 2}, {1, 2}}) {
		t.Errorf("connected shards = %v, want [[0 2] [1 2]]", shards)
	}
	if n := len(e.fake.Identifies()); n != 2 {
		t.Errorf("identifies = %d, want 2", n)
	}
	// The guild's events reach the shard that owns it, once.
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("750000000000000001", gwAlice, "sharded"))
	if evs := e.waitEvents(t, 1); evs[0].Text != "sharded" {
		t.Errorf("event = %+v", evs[0])
	}
}

func TestGatewayIdentifiesAfterAnInvalidSession(t *testing.T) {
	e := gwStart(t)
	e.run(t, "replica-a", 1)
	e.connected(t, 1)
	e.fake.InvalidSession(false)
	natstest.Eventually(t, 10*time.Second, "a second identify", func() bool { return len(e.fake.Identifies()) == 2 })
	e.connected(t, 1)
	e.fake.Dispatch("MESSAGE_CREATE", gwMessage("760000000000000001", gwAlice, "new session"))
	if evs := e.waitEvents(t, 1); evs[0].Text != "new session" {
		t.Errorf("event = %+v", evs[0])
	}
}

// gwHoldFirst holds the first Publish until the gateway's context has
// ended, so the dispatches read meanwhile wait in the shard's queue when
// the shard stops.
type gwHoldFirst struct {
	gatewayCtx context.Context
	next       discord.Publisher
	once       sync.Once
	held       chan struct{} // closed when the first Publish is held
}

func (h *gwHoldFirst) Publish(ctx context.Context, ev *schemas.Event) error {
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.held)
		<-h.gatewayCtx.Done()
	}
	return h.next.Publish(ctx, ev)
}

func TestGatewayPublishesWhatWasReadWhenItStops(t *testing.T) {
	e := gwStart(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hold := &gwHoldFirst{gatewayCtx: ctx, next: collectors.NewPublisher(e.nats.Conn.JS, logging.Discard()), held: make(chan struct{})}
	gw, err := discord.NewGateway(discord.GatewayConfig{
		Token: e.fake.BotToken, Endpoints: discord.Endpoints{API: e.fake.APIURL()}, Shards: 1,
		Publisher: hold, Interactions: e.interactions,
		Catalogue: func(context.Context) ([]schemas.Manifest, error) { return gwCatalogue, nil },
		Leases:    e.leases(t, "replica-a"), Logger: logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	e.connected(t, 1)

	// Many queued messages: the worker's select between the queue and the
	// ended context is random, so without the drain some are lost almost
	// surely.
	const messages = 12
	for i := range messages {
		e.fake.Dispatch("MESSAGE_CREATE", gwMessage(fmt.Sprintf("7800000000000000%02d", i), gwAlice, fmt.Sprintf("queued %02d", i)))
	}
	select {
	case <-hold.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the first message was never published")
	}
	// The reader runs handlers in order: once the interaction after the
	// messages is deferred, every message before it is in the queue.
	e.fake.Dispatch("INTERACTION_CREATE", discordtest.InteractionCreate(e.fake.AppID, discordtest.Interaction{
		ID: "780000000000000099", Token: "tok-drain", GuildID: gwGuildID, ChannelID: gwChannelID, User: gwAlice,
		Command: "ping"}))
	natstest.Eventually(t, 10*time.Second, "interaction deferred", func() bool {
		return slices.ContainsFunc(e.fake.Callbacks(), func(c discordtest.Callback) bool { return c.Token == "tok-drain" })
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// Run has returned: what was published is in the stream already.
	var chats int
	for _, ev := range e.events(t) {
		if ev.Kind == schemas.KindChat {
			chats++
		}
	}
	if chats != messages {
		t.Errorf("%d of the %d messages read were published", chats, messages)
	}
}
