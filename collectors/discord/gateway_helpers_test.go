package discord_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/discord/discordtest"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// The guild the gateway tests happen in: an owner, a moderator role
// (MANAGE_GUILD), an administrator role, a text channel and a thread.
const (
	gwGuildID   = "200000000000000001"
	gwOwnerID   = "400000000000000001"
	gwModRole   = "500000000000000001"
	gwAdminRole = "500000000000000002"
	gwChannelID = "600000000000000001"
	gwThreadID  = "600000000000000002"
)

var gwGuild = discordtest.Guild{
	ID: gwGuildID, Name: "Penguins", OwnerID: gwOwnerID,
	Roles: []discordtest.Role{
		{ID: gwGuildID, Name: "@everyone", Permissions: 1 << 11}, // SEND_MESSAGES only
		{ID: gwModRole, Name: "mods", Permissions: 1 << 5},       // MANAGE_GUILD
		{ID: gwAdminRole, Name: "admins", Permissions: 1 << 3},   // ADMINISTRATOR
	},
	Channels: []discordtest.Channel{
		{ID: gwChannelID, Name: "general", Type: 0},
		{ID: gwThreadID, Name: "a thread", Type: 11, ParentID: gwChannelID},
	},
}

var (
	gwAlice = discordtest.User{ID: "410000000000000001", Username: "alice", GlobalName: "Alice"}
	gwOwner = discordtest.User{ID: gwOwnerID, Username: "owner"}
	gwOther = discordtest.User{ID: "410000000000000009", Username: "otherbot", Bot: true}
)

// gwCatalogue: ping and poll answer publicly, secret privately.
var gwCatalogue = []schemas.Manifest{
	{Name: "basics", Commands: []schemas.CommandSpec{
		{Name: "ping", Permission: "everyone"},
		{Name: "poll", Permission: "everyone"},
		{Name: "secret", Permission: "everyone", Visibility: schemas.VisibilityPrivate},
	}},
}

type gwEnv struct {
	// catalogue overrides gwCatalogue for the gateways run after it is set.
	catalogue func(context.Context) ([]schemas.Manifest, error)
	// published counts Publish calls by kind (the stream drops repeated
	// event ids, so its content cannot tell a republish).
	publishedMu sync.Mutex
	published   map[schemas.Kind]int

	fake         *discordtest.Server
	nats         *natstest.Env
	interactions *collectors.Interactions
}

func gwStart(t *testing.T) *gwEnv {
	t.Helper()
	fake := discordtest.New(t)
	fake.AddGuild(gwGuild)
	env := natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = 1500 * time.Millisecond })
	in, err := collectors.OpenInteractions(t.Context(), env.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	return &gwEnv{fake: fake, nats: env, interactions: in}
}

func (e *gwEnv) leases(t *testing.T, holder string) *coord.Leases {
	t.Helper()
	kv, err := e.nats.Conn.JS.KeyValue(t.Context(), streams.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	l, err := coord.NewLeases(t.Context(), kv, holder, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// run starts a Gateway for holder with shards (0: the fake's
// recommendation); stop ends it and waits for Run to return.
func (e *gwEnv) run(t *testing.T, holder string, shards int) (stop func()) {
	t.Helper()
	catalogue := e.catalogue
	if catalogue == nil {
		catalogue = func(context.Context) ([]schemas.Manifest, error) { return gwCatalogue, nil }
	}
	gw, err := discord.NewGateway(discord.GatewayConfig{
		Token: e.fake.BotToken, Endpoints: discord.Endpoints{API: e.fake.APIURL()}, Shards: shards,
		Publisher: gwCounting{e, collectors.NewPublisher(e.nats.Conn.JS, logging.Discard())}, Interactions: e.interactions,
		Catalogue: catalogue,
		Leases:    e.leases(t, holder), Logger: logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// connected waits until n shard connections have identified or resumed.
func (e *gwEnv) connected(t *testing.T, n int) {
	t.Helper()
	natstest.Eventually(t, 10*time.Second, "shards connected", func() bool { return len(e.fake.Connections()) == n })
}

func (e *gwEnv) events(t *testing.T) []schemas.Event {
	t.Helper()
	return natstest.Decode[schemas.Event](t, e.nats.Conn.JS, schemas.StreamEvents, "wb.events.discord.>")
}

// waitEvents waits for exactly n events (failing on more) and returns them
// oldest first.
func (e *gwEnv) waitEvents(t *testing.T, n int) []schemas.Event {
	t.Helper()
	var evs []schemas.Event
	natstest.Eventually(t, 15*time.Second, "discord events", func() bool {
		evs = e.events(t)
		return len(evs) >= n
	})
	if len(evs) != n {
		t.Fatalf("got %d events, want %d: %+v", len(evs), n, evs)
	}
	return evs
}

// gwMessage is a guild message in #general.
func gwMessage(id string, author discordtest.User, content string, roles ...string) map[string]any {
	return discordtest.MessageCreate(discordtest.Message{ID: id, ChannelID: gwChannelID, GuildID: gwGuildID,
		Author: author, Content: content, Roles: roles})
}

func gwTexts(evs []schemas.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Text)
	}
	sort.Strings(out)
	return out
}

type gwCounting struct {
	e    *gwEnv
	next discord.Publisher
}

func (c gwCounting) Publish(ctx context.Context, ev *schemas.Event) error {
	c.e.publishedMu.Lock()
	if c.e.published == nil {
		c.e.published = map[schemas.Kind]int{}
	}
	c.e.published[ev.Kind]++
	c.e.publishedMu.Unlock()
	return c.next.Publish(ctx, ev)
}

func (e *gwEnv) publishedKind(k schemas.Kind) int {
	e.publishedMu.Lock()
	defer e.publishedMu.Unlock()
	return e.published[k]
}
