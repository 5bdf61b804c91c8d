package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"

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

	catalogue catalogueCache
	timeouts  timeoutMemory
	// background tracks catalogue reads, which may outlive the
	// interaction that started them; Run waits for them.
	background sync.WaitGroup
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
	return &Gateway{cfg: cfg, log: cfg.Logger, now: time.Now, timeouts: timeoutMemory{last: map[string]time.Time{}}}, nil
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
	g.log.Info("discord: gateway shards", "shards", count, "url", gatewayURL)
	var wg sync.WaitGroup
	errs := make([]error, count)
	for n := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("discord.shard.%d.%d", n, count)
			errs[n] = collectors.HoldLease(ctx, g.cfg.Leases, key, func(ctx context.Context) error {
				return g.runShard(ctx, gatewayURL, n, count)
			})
		}()
	}
	wg.Wait()
	g.background.Wait()
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

// sessionClient is the HTTP client of one shard's session. discordgo asks
// GET /gateway for the URL to dial and offers no way to give it one, so
// that request is answered here: with the URL chosen by plan, or, once
// READY named one, the session's resume_gateway_url (discordgo v0.29.0
// ignores that field and would resume on the main URL).
func (g *Gateway) sessionClient(gatewayURL string) (*http.Client, *gatewayAnswer) {
	var client http.Client
	if g.cfg.HTTPClient != nil {
		client = *g.cfg.HTTPClient
	}
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	answer := &gatewayAnswer{url: gatewayURL, next: next}
	client.Transport = answer
	return &client, answer
}

type gatewayAnswer struct {
	url  string
	next http.RoundTripper

	mu     sync.Mutex
	resume string
}

// learnResume keeps the resume_gateway_url of the session READY started;
// "" (an older gateway) goes back to the main URL.
func (a *gatewayAnswer) learnResume(resumeURL string) {
	a.mu.Lock()
	a.resume = strings.TrimRight(resumeURL, "/")
	a.mu.Unlock()
}

func (a *gatewayAnswer) dialURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.resume != "" {
		return a.resume
	}
	return a.url
}

func (a *gatewayAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasSuffix(req.URL.Path, "/gateway") {
		return a.next.RoundTrip(req)
	}
	body, _ := json.Marshal(map[string]string{"url": a.dialURL()})
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req,
	}, nil
}

// errFreshURL refuses a dial on purpose: see redialer.
var errFreshURL = errors.New("discord: dial refused to make discordgo ask for the gateway URL again")

// redialer makes each Open ask GET /gateway (gatewayAnswer) for the URL to
// dial. discordgo caches the URL of its first connection and forgets it
// only when a dial fails, so the first dial of an Open is refused, after
// which discordgo asks again; the session id and sequence it keeps make
// that second Open a resume.
type redialer struct {
	refuse, refused, opened atomic.Bool
}

func (r *redialer) install(s *discordgo.Session) {
	d := *websocket.DefaultDialer
	if s.Dialer != nil {
		d = *s.Dialer
	}
	next := d.NetDialContext
	if next == nil {
		var nd net.Dialer
		next = nd.DialContext
	}
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if r.refuse.Swap(false) {
			r.refused.Store(true)
			return nil, errFreshURL
		}
		return next(ctx, network, addr)
	}
	s.Dialer = &d
}

// open connects s to the URL gatewayAnswer gives now. The first Open
// needs no refusal: discordgo has no URL cached yet.
func (r *redialer) open(s *discordgo.Session) error {
	if !r.opened.Swap(true) {
		return s.Open()
	}
	r.refuse.Store(true)
	err := s.Open()
	if r.refused.Swap(false) {
		err = s.Open()
	}
	r.refuse.Store(false)
	return err
}

// shard is one connected gateway shard.
type shard struct {
	g       *Gateway
	session *discordgo.Session
	log     *slog.Logger
	// Set by READY, read by the worker only.
	botID, sessionID string
}

// drainTimeout bounds the publishing of what a stopping shard had already
// read.
const drainTimeout = 5 * time.Second

// interactionTimeout bounds the handling of one interaction (deferral,
// interaction kept, event published), which may outlive the shard's
// context by that much.
const interactionTimeout = 10 * time.Second

// runShard connects shard n of count and serves it until ctx ends (the
// lease is lost or the replica stops). discordgo's own reconnection is
// off: it would go on after the lease is lost (Close does not stop its
// loop), so the same shard would run on two replicas. A dropped socket is
// reconnected here, while ctx lasts, and discordgo resumes the session
// (to its resume_gateway_url); it identifies again after an invalid
// session by itself.
func (g *Gateway) runShard(ctx context.Context, gatewayURL string, n, count int) error {
	client, answer := g.sessionClient(gatewayURL)
	s, err := NewSession(g.cfg.Token, g.cfg.Endpoints, client)
	if err != nil {
		return err
	}
	s.ShardID, s.ShardCount = n, count
	s.Identify.Intents = g.cfg.Intents
	s.ShouldReconnectOnError = false
	var redial redialer
	redial.install(s)
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
	disconnected := make(chan struct{}, 1)

	// Interactions are answered on their own goroutines, straight from the
	// reader: the 3 s deadline must not wait behind the queue, and they
	// need no order. runShard waits for them (they publish).
	var (
		interactionsMu sync.Mutex
		stopped        bool
		interactions   sync.WaitGroup
	)
	s.AddHandler(func(_ *discordgo.Session, e *discordgo.Event) {
		switch e.Type {
		case "READY":
			var r struct {
				ResumeGatewayURL string `json:"resume_gateway_url"`
			}
			_ = json.Unmarshal(e.RawData, &r)
			answer.learnResume(r.ResumeGatewayURL)
		case "INTERACTION_CREATE":
			interactionsMu.Lock()
			defer interactionsMu.Unlock()
			if stopped {
				log.Warn("discord: interaction read after the shard stopped; not answered", "seq", e.Sequence)
				return
			}
			interactions.Add(1)
			raw := e.RawData
			go func() {
				defer interactions.Done()
				ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interactionTimeout)
				defer cancel()
				sh.interaction(ictx, raw)
			}()
			return
		}
		if ctx.Err() == nil {
			select {
			case queue <- e:
				return
			case <-ctx.Done():
			}
		}
		log.Warn("discord: dispatch read after the shard stopped; not published", "type", e.Type, "seq", e.Sequence)
	})
	s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Disconnect) {
		select {
		case disconnected <- struct{}{}:
		default:
		}
	})

	closed := make(chan struct{})
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		for {
			select {
			case e := <-queue:
				// Not cut off by ctx: a dispatch that was read is
				// published even if the shard stops meanwhile.
				pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
				sh.handle(pctx, e)
				cancel()
			case <-ctx.Done():
				// What was read is published still, once the reader
				// has stopped adding to the queue.
				<-closed
				sh.drain(ctx, queue)
				return
			}
		}
	}()

	for sh.connect(ctx, &redial, disconnected) {
		select {
		case <-ctx.Done():
		case <-disconnected:
			log.Warn("discord: shard disconnected; reconnecting")
			continue
		}
		break
	}
	if err := s.Close(); err != nil {
		log.Warn("discord: unable to close the shard", logging.Err(err))
	}
	close(closed)
	<-workerDone
	interactionsMu.Lock()
	stopped = true
	interactionsMu.Unlock()
	interactions.Wait()
	return nil
}

// connect opens the session, retrying with backoff; false when ctx ended
// first (nothing is dialed once it has).
func (sh *shard) connect(ctx context.Context, redial *redialer, disconnected chan struct{}) bool {
	wait := time.Second
	for {
		if ctx.Err() != nil {
			return false
		}
		select {
		case <-disconnected: // from the connection being replaced
		default:
		}
		err := redial.open(sh.session)
		if err == nil {
			sh.log.Info("discord: shard connected")
			return true
		}
		sh.log.Warn("discord: unable to connect the shard; retrying", "wait", wait, logging.Err(redactURL(err)))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// drain publishes the dispatches left in queue when the shard stops, with
// a context of its own (ctx has ended); what cannot be published is
// logged.
func (sh *shard) drain(ctx context.Context, queue chan *discordgo.Event) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for {
		select {
		case e := <-queue:
			sh.handle(dctx, e)
		default:
			return
		}
	}
}

// handle normalizes and publishes one dispatch.
func (sh *shard) handle(ctx context.Context, e *discordgo.Event) {
	now := sh.g.now()
	var (
		ev  *schemas.Event
		err error
	)
	dir := stateDirectory{s: sh.session, ctx: ctx}
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
		ev, err = normalizeMessage(e.RawData, sh.botID, dir, now)
	case "GUILD_MEMBER_ADD":
		ev, err = normalizeMemberAdd(e.RawData, sh.botID, now)
	case "GUILD_BAN_ADD":
		ev, err = normalizeBan(e.RawData, fmt.Sprintf("%s:%d", sh.sessionID, e.Sequence), now)
	case "GUILD_MEMBER_UPDATE":
		ev, err = normalizeMemberUpdate(e.RawData, now)
		if err == nil && !sh.g.timeouts.changed(e.RawData, ev) {
			ev = nil
		}
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

// publish publishes ev; what fails is logged, since it is lost.
func (sh *shard) publish(ctx context.Context, ev *schemas.Event) {
	if err := sh.g.cfg.Publisher.Publish(ctx, ev); err != nil {
		sh.log.Error("discord: unable to publish an event; it is lost", "event_id", ev.ID, "kind", ev.Kind, logging.Err(err))
	}
}

// guildLookupTimeout bounds asking REST for a guild the state lacks.
const guildLookupTimeout = 5 * time.Second

// stateDirectory reads guilds and channels from discordgo's state, asking
// REST for a guild it has not seen (GUILD_CREATE fills it normally).
type stateDirectory struct {
	s   *discordgo.Session
	ctx context.Context
}

func (d stateDirectory) guild(guildID string) (guildView, bool) {
	st := d.s.State
	g, err := st.Guild(guildID)
	if err != nil {
		ctx, cancel := context.WithTimeout(d.ctx, guildLookupTimeout)
		g, err = d.s.Guild(guildID, discordgo.WithContext(ctx))
		cancel()
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
