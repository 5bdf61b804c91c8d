package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	Token     string
	Endpoints Endpoints
	// Shards is the shard count; 0 means the one GET /gateway/bot
	// recommends.
	Shards       int
	Intents      discordgo.Intent
	Publisher    Publisher
	Interactions *collectors.Interactions
	// Catalogue lists the modules' manifests: command names for
	// autocomplete, and which commands answer privately.
	Catalogue  func(ctx context.Context) ([]schemas.Manifest, error)
	Leases     *coord.Leases
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Gateway runs the gateway shards this replica can hold and publishes what
// they receive.
type Gateway struct {
	cfg GatewayConfig
	log *slog.Logger
	now func() time.Time

	catalogueMu   sync.Mutex
	catalogue     []schemas.Manifest
	catalogueRead time.Time
}

// gatewayIntents are the intents asked for when the configuration names
// none: guilds, their messages (with content), direct messages, members
// (joins, timeouts) and moderation (bans: discordgo calls GUILD_MODERATION,
// 1 << 2, IntentsGuildBans).
const gatewayIntents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsDirectMessages |
	discordgo.IntentsMessageContent | discordgo.IntentsGuildMembers | discordgo.IntentsGuildBans

// shardQueueSize bounds the dispatches waiting for one shard's worker; a
// full queue holds the shard's reader back rather than losing events.
const shardQueueSize = 256

// catalogueTTL is how long the manifests are reused: an interaction must be
// answered within 3 s, so the catalogue is not read from PostgreSQL for each.
const catalogueTTL = time.Minute

// NewGateway checks cfg.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	switch {
	case strings.TrimSpace(cfg.Token) == "":
		return nil, errors.New("discord: the gateway needs a bot token")
	case cfg.Publisher == nil || cfg.Interactions == nil || cfg.Leases == nil:
		return nil, errors.New("discord: the gateway needs a publisher, the interactions bucket and leases")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Intents == 0 {
		cfg.Intents = gatewayIntents
	}
	if cfg.Catalogue == nil {
		cfg.Catalogue = func(context.Context) ([]schemas.Manifest, error) { return nil, nil }
	}
	return &Gateway{cfg: cfg, log: cfg.Logger, now: time.Now}, nil
}

// Run holds each shard under lease "discord.shard.<n>.<count>" (so exactly
// one replica connects it) until ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	gatewayURL, count, err := g.planWithRetry(ctx)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	client := g.sessionClient(gatewayURL)
	g.log.Info("discord: gateway shards", "shards", count, "url", gatewayURL)
	var wg sync.WaitGroup
	errs := make([]error, count)
	for n := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("discord.shard.%d.%d", n, count)
			errs[n] = collectors.HoldLease(ctx, g.cfg.Leases, key, func(ctx context.Context) error {
				return g.runShard(ctx, client, n, count)
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// planWithRetry plans until it works or ctx ends: Discord being down at
// start is waited out; a refused bot token (401) is not, since waiting
// cannot fix it.
func (g *Gateway) planWithRetry(ctx context.Context) (string, int, error) {
	wait := time.Second
	for {
		url, count, err := g.plan(ctx)
		if err == nil || ctx.Err() != nil {
			return url, count, nil
		}
		var rest *discordgo.RESTError
		if errors.As(err, &rest) && rest.Response != nil && rest.Response.StatusCode == http.StatusUnauthorized {
			return "", 0, fmt.Errorf("discord: the bot token was refused (check DISCORD_BOT_TOKEN): %w", err)
		}
		g.log.Warn("discord: unable to plan the gateway; retrying", "retry_in", wait, logging.Err(err))
		select {
		case <-ctx.Done():
			return "", 0, nil
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

// plan finds the gateway URL and shard count, asking GET /gateway/bot for
// what configuration leaves open.
func (g *Gateway) plan(ctx context.Context) (string, int, error) {
	url, count := g.cfg.Endpoints.Gateway, g.cfg.Shards
	if url != "" && count > 0 {
		return url, count, nil
	}
	s, err := NewSession(g.cfg.Token, g.cfg.Endpoints, g.cfg.HTTPClient)
	if err != nil {
		return "", 0, err
	}
	bot, err := s.GatewayBot(discordgo.WithContext(ctx))
	if err != nil {
		return "", 0, fmt.Errorf("discord: unable to read GET /gateway/bot: %w", err)
	}
	if url == "" {
		url = strings.TrimRight(bot.URL, "/")
	}
	if count <= 0 {
		count = max(bot.Shards, 1)
	}
	return url, count, nil
}

// sessionClient is the HTTP client of the shard sessions. discordgo asks
// GET /gateway for the URL to dial and offers no way to give it one, so
// that request is answered here with the URL chosen by plan.
func (g *Gateway) sessionClient(gatewayURL string) *http.Client {
	var client http.Client
	if g.cfg.HTTPClient != nil {
		client = *g.cfg.HTTPClient
	}
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = &gatewayAnswer{url: gatewayURL, next: next}
	return &client
}

type gatewayAnswer struct {
	url  string
	next http.RoundTripper
}

func (a *gatewayAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/gateway") {
		return a.next.RoundTrip(req)
	}
	body, _ := json.Marshal(map[string]string{"url": a.url})
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// shard is one connected gateway shard.
type shard struct {
	g       *Gateway
	session *discordgo.Session
	log     *slog.Logger
	// Set by READY, read by the worker only.
	botID, sessionID string
}

// runShard connects shard n of count and serves it until ctx ends (the
// lease is lost or the replica stops). discordgo resumes by itself after a
// dropped socket and identifies again after an invalid session.
func (g *Gateway) runShard(ctx context.Context, client *http.Client, n, count int) error {
	s, err := NewSession(g.cfg.Token, g.cfg.Endpoints, client)
	if err != nil {
		return err
	}
	s.ShardID, s.ShardCount = n, count
	s.Identify.Intents = g.cfg.Intents
	s.ShouldReconnectOnError = true
	// Handlers run in the reader, in order; they only queue, so the worker
	// sees dispatches in the order Discord sent them.
	s.SyncEvents = true
	// State keeps guilds, roles and channels (for roles and channel
	// names), not members, presences or messages.
	st := discordgo.NewState()
	st.TrackMembers, st.TrackPresences, st.TrackVoice = false, false, false
	st.TrackEmojis, st.TrackStickers, st.TrackThreadMembers = false, false, false
	st.MaxMessageCount = 0
	s.State, s.StateEnabled = st, true

	log := g.log.With("shard", n, "shards", count)
	sh := &shard{g: g, session: s, log: log}
	queue := make(chan *discordgo.Event, shardQueueSize)
	s.AddHandler(func(_ *discordgo.Session, e *discordgo.Event) {
		select {
		case queue <- e:
		case <-ctx.Done():
		}
	})
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		for {
			select {
			case e := <-queue:
				sh.handle(ctx, e)
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { <-workerDone }()

	wait := time.Second
	for {
		err := s.Open()
		if err == nil {
			break
		}
		log.Warn("discord: unable to connect the shard; retrying", "wait", wait, logging.Err(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
	log.Info("discord: shard connected")
	<-ctx.Done()
	if err := s.Close(); err != nil {
		log.Warn("discord: unable to close the shard", logging.Err(err))
	}
	return nil
}

// handle normalizes and publishes one dispatch.
func (sh *shard) handle(ctx context.Context, e *discordgo.Event) {
	now := sh.g.now()
	var (
		ev  *schemas.Event
		err error
	)
	switch e.Type {
	case "READY":
		var r struct {
			SessionID string   `json:"session_id"`
			User      wireUser `json:"user"`
		}
		if err := json.Unmarshal(e.RawData, &r); err != nil {
			sh.log.Error("discord: unreadable READY", logging.Err(err))
			return
		}
		sh.botID, sh.sessionID = r.User.ID, r.SessionID
		return
	case "MESSAGE_CREATE":
		ev, err = normalizeMessage(e.RawData, sh.botID, stateDirectory{sh.session}, now)
	case "GUILD_MEMBER_ADD":
		ev, err = normalizeMemberAdd(e.RawData, sh.botID, now)
	case "GUILD_BAN_ADD":
		ev, err = normalizeBan(e.RawData, fmt.Sprintf("%s:%d", sh.sessionID, e.Sequence), now)
	case "GUILD_MEMBER_UPDATE":
		ev, err = normalizeMemberUpdate(e.RawData, now)
	case "INTERACTION_CREATE":
		// Answered on its own: the 3 s deadline must not wait for the
		// queue, and interactions need no order.
		raw := e.RawData
		go sh.interaction(ctx, raw)
		return
	default:
		return
	}
	if err != nil {
		sh.log.Warn("discord: dispatch dropped", "type", e.Type, logging.Err(err))
		return
	}
	if ev == nil {
		return
	}
	sh.publish(ctx, ev)
}

func (sh *shard) publish(ctx context.Context, ev *schemas.Event) {
	if err := sh.g.cfg.Publisher.Publish(ctx, ev); err != nil && ctx.Err() == nil {
		sh.log.Error("discord: unable to publish an event", "event_id", ev.ID, "kind", ev.Kind, logging.Err(err))
	}
}

// stateDirectory reads guilds and channels from discordgo's state, asking
// REST for a guild it has not seen (GUILD_CREATE fills it normally).
type stateDirectory struct{ s *discordgo.Session }

func (d stateDirectory) guild(guildID string) (guildView, bool) {
	st := d.s.State
	g, err := st.Guild(guildID)
	if err != nil {
		g, err = d.s.Guild(guildID)
		if err != nil {
			return guildView{}, false
		}
		_ = st.GuildAdd(g)
	}
	st.RLock()
	defer st.RUnlock()
	v := guildView{OwnerID: g.OwnerID, RolePermissions: make(map[string]int64, len(g.Roles))}
	for _, r := range g.Roles {
		v.RolePermissions[r.ID] = r.Permissions
	}
	return v, true
}

func (d stateDirectory) channel(channelID string) (string, bool) {
	st := d.s.State
	ch, err := st.Channel(channelID)
	if err != nil {
		return "", false
	}
	st.RLock()
	defer st.RUnlock()
	return ch.Name, ch.IsThread()
}
