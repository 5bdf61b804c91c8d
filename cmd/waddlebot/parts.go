package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/ai"
	"github.com/waddlebot/waddlebot/actions/builtin"
	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/collectors/discord"
	"github.com/waddlebot/waddlebot/collectors/slack"
	"github.com/waddlebot/waddlebot/collectors/twitch"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/daemon"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Wiring shared by `dev` and the single-part commands, so both run the same parts.

func addRouter(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store) (*router.Router, error) {
	r, err := router.New(router.Config{
		Conn: conn, Store: st,
		Concurrency: p.RouterConcurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		UserRateLimit: p.UserRateLimit, UserRateWindow: p.UserRateWindow,
		ChannelRateLimit: p.ChannelRateLimit, ChannelRateWindow: p.ChannelRateWindow,
		InvocationDeadline: p.InvocationDeadline, CacheTTL: p.CacheTTL, AliasDepth: p.AliasDepth,
		Logger: p.log,
	})
	if err != nil {
		return nil, err
	}
	srv.AddCheck("router", ops.Ready(r.Ready))
	d.Add(daemon.StageRouter, "router", r.Run)
	return r, nil
}

func addAction(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store, m actions.Module) error {
	concurrency := p.ActionConcurrency
	if m.Manifest.Name == "ai" {
		// Pull no more than the module has slots for: the rest would only
		// wait inside the module while other replicas sit idle.
		concurrency = max(1, p.AIMaxConcurrent)
	}
	w, err := actions.NewWorker(actions.Config{
		Module: m, Conn: conn, Store: st,
		Concurrency: concurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		HandlerTimeout: p.HandlerTimeout, OutboxSweep: p.OutboxSweep,
		// Three beats per TTL: one lost beat does not make a module look dead.
		HeartbeatEvery: p.HeartbeatTTL / 3, Retention: p.CommandsMaxAge + time.Hour,
		Logger: p.log,
	})
	if err != nil {
		return err
	}
	srv.AddCheck("action "+m.Manifest.Name, ops.Ready(w.Ready))
	d.Add(daemon.StageActions, "action "+m.Manifest.Name, w.Run)
	return nil
}

// moduleDeps is what built-in modules are built with.
func moduleDeps(p parsed, st *store.Store, conn *natsx.Conn) builtin.Deps {
	defaults := ai.FromConfig(p.Config)
	return builtin.Deps{Store: st, AliasDepth: p.AliasDepth, Conn: conn, AI: &defaults}
}

// addRelay runs the relay of external modules.
func addRelay(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store) error {
	r, err := external.New(external.Config{Conn: conn, Store: st, MaxFailures: p.MaxHandlerFailures,
		AckWait: p.ConsumerAckWait, WebhookTimeout: p.HandlerTimeout, Logger: p.log})
	if err != nil {
		return err
	}
	srv.AddCheck("relay", ops.Ready(r.Ready))
	d.Add(daemon.StageActions, "relay", r.Run)
	return nil
}

// addConsole runs the console platform: its sender, and its chat page on srv.
func addConsole(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn) error {
	c := console.New(console.Config{Publisher: collectors.NewPublisher(conn.JS, p.log), Conn: conn, Logger: p.log})
	sender, err := collectors.NewSender(collectors.SenderConfig{
		Platform: c, Conn: conn, Budget: p.ConsoleSendBudget, Window: p.SendWindow,
		Concurrency: p.SenderConcurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		Logger: p.log,
	})
	if err != nil {
		return err
	}
	srv.Handle("/", c.Handler())
	srv.AddCheck("console sender", ops.Ready(sender.Ready))
	d.Add(daemon.StageSenders, "console sender", sender.Run)
	return nil
}

// addTwitch runs a Twitch collector replica: EventSub intake, the connect
// routes on srv, lookups, token validation, and the reply sender.
func addTwitch(d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store, addr string, inDev bool) error {
	public, err := partPublicURL(p, addr, inDev)
	if err != nil {
		return err
	}
	c, err := twitch.New(twitch.Config{
		ClientID: p.TwitchClientID, ClientSecret: p.TwitchClientSecret,
		Endpoints:     twitch.Endpoints{API: p.TwitchAPIURL, Auth: p.TwitchAuthURL, EventSub: p.TwitchEventSubURL},
		PublicURL:     public,
		Transport:     p.TwitchTransport,
		WebhookSecret: p.TwitchWebhookSecret, ConduitShards: p.TwitchConduitShards,
		Budget: p.TwitchSendBudget, ModeratorBudget: p.TwitchModSendBudget, SendWindow: p.SendWindow,
		SenderConcurrency: p.SenderConcurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		// dev listens on loopback for one person; elsewhere the operator
		// pages need ADMIN_TOKEN.
		Operator: twitch.OperatorCheck(p.AdminToken, inDev),
		Conn:     conn, Store: st, Holder: replicaName(), Logger: p.log,
	})
	if err != nil {
		return err
	}
	c.Mount(srv)
	srv.AddCheck("twitch sender", ops.Ready(c.Sender().Ready))
	d.Add(daemon.StageIntake, "twitch eventsub", c.RunIntake)
	d.Add(daemon.StageSenders, "twitch sender", c.Sender().Run)
	return nil
}

// addDiscord runs a Discord collector replica: the gateway shards it can
// hold, the install link, and the reply sender.
func addDiscord(ctx context.Context, d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store, addr string, inDev bool) error {
	public, err := partPublicURL(p, addr, inDev)
	if err != nil {
		return err
	}
	c, err := discord.New(ctx, discord.Config{
		BotToken: p.DiscordBotToken, AppID: p.DiscordAppID, ClientSecret: p.DiscordClientSecret,
		Endpoints: discord.Endpoints{API: p.DiscordAPIURL, Gateway: p.DiscordGatewayURL}, Shards: p.DiscordShards,
		PublicURL:         public,
		SenderConcurrency: p.SenderConcurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		Conn: conn, Store: st, Holder: replicaName(), Logger: p.log,
	})
	if err != nil {
		return err
	}
	c.Mount(srv)
	srv.AddCheck("discord sender", ops.Ready(c.Sender().Ready))
	d.Add(daemon.StageIntake, "discord gateway", c.RunIntake)
	d.Add(daemon.StageSenders, "discord sender", c.Sender().Run)
	return nil
}

// addSlack runs a Slack collector replica: Socket Mode or the Events API,
// the install link, and the reply sender.
func addSlack(ctx context.Context, d *daemon.Daemon, srv *ops.Server, p parsed, conn *natsx.Conn, st *store.Store, addr string, inDev bool) error {
	public, err := partPublicURL(p, addr, inDev)
	if err != nil {
		return err
	}
	c, err := slack.New(ctx, slack.Config{
		AppToken: p.SlackAppToken, BotToken: p.SlackBotToken, ClientID: p.SlackClientID, ClientSecret: p.SlackClientSecret,
		SigningSecret: p.SlackSigningSecret, APIURL: p.SlackAPIURL, AuthorizeURL: p.SlackAuthorizeURL, Transport: p.SlackTransport,
		PublicURL: public, Budget: p.SlackSendBudget, Window: time.Second,
		SenderConcurrency: p.SenderConcurrency, MaxFailures: p.MaxHandlerFailures, AckWait: p.ConsumerAckWait,
		Conn: conn, Store: st, Holder: replicaName(), Logger: p.log,
	})
	if err != nil {
		return err
	}
	c.Mount(srv)
	srv.AddCheck("slack sender", ops.Ready(c.Sender().Ready))
	d.Add(daemon.StageIntake, "slack intake", c.RunIntake)
	d.Add(daemon.StageSenders, "slack sender", c.Sender().Run)
	return nil
}

func discordConfigured(p parsed) bool { return p.DiscordBotToken != "" }

func slackConfigured(p parsed) bool {
	return p.SlackAppToken != "" || p.SlackSigningSecret != "" && (p.SlackBotToken != "" || p.SlackClientID != "")
}

// twitchConfigured reports whether the Twitch application is set, so dev
// runs the collector.
func twitchConfigured(p parsed) bool { return p.TwitchClientID != "" && p.TwitchClientSecret != "" }

// publicURL is PUBLIC_URL, or the address the HTTP server is bound to as
// a local URL.
// partPublicURL is the address platforms send browsers back to. dev falls
// back to its own loopback address; a deployed part must be told, since a
// guess (localhost) would be sent to Twitch, Discord or Slack and fail only
// when a streamer clicks the link.
func partPublicURL(p parsed, addr string, inDev bool) (string, error) {
	if p.PublicURL == "" && !inDev {
		return "", usageError("WADDLEBOT_PUBLIC_URL is not set: the OAuth links send browsers back to it (for example https://bot.example.com)")
	}
	return publicURL(p, addr), nil
}

func publicURL(p parsed, addr string) string {
	if p.PublicURL != "" {
		return strings.TrimRight(p.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// replicaName names this process in connection leases: host, pid and a
// random suffix, so a restarted process is a new holder.
func replicaName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
}

// serve binds the HTTP server and adds it to the intake stage. When the
// address is the default one (not chosen by the operator), a taken port
// moves to the next free one, so a second dev or a busy 8080 is no obstacle.
func serve(d *daemon.Daemon, srv *ops.Server, p parsed) (string, error) {
	tries := 1
	if p.Sources["HTTP_ADDR"] == config.FromDefault {
		tries = 20
	}
	if p.Pprof {
		srv.ServeProfiles()
	}
	addr, err := srv.ListenFrom(p.HTTPAddr, tries)
	if err != nil {
		return "", err
	}
	d.Add(daemon.StageIntake, "http", srv.Run)
	return addr, nil
}

// runPart is the shape of every single-part command: connect, verify the
// streams (never change them), add the part, serve /healthz and friends.
func runPart(ctx context.Context, p parsed, name string, usesStore bool,
	add func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, addr string) error) error {
	conn, err := connectNATS(ctx, p, "waddlebot "+name)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := streams.Verify(ctx, conn.JS); err != nil {
		return err
	}
	var st *store.Store
	if usesStore {
		st, err = openStore(ctx, p, false)
		if err != nil {
			return err
		}
		defer st.Close()
	}
	d := daemon.New(p.log)
	srv := ops.New(p.log)
	// Bound first: a part that hands out links to itself (the Twitch
	// connect routes) needs the address it got.
	addr, err := serve(d, srv, p)
	if err != nil {
		return err
	}
	if err := add(d, srv, conn, st, addr); err != nil {
		return err
	}
	p.log.Info("waddlebot: running", logging.KeyPart, name, logging.KeyAddr, addr)
	return d.Run(ctx)
}

func partFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

var partGroups = []config.Group{config.GroupNATS, config.GroupDatabase, config.GroupHTTP, config.GroupSecrets,
	config.GroupStreams, config.GroupData}

func runRouter(ctx context.Context, args []string) error {
	p, err := parse(partFlags("router"), args, append(partGroups, config.GroupRouter)...)
	if err != nil {
		return err
	}
	return runPart(ctx, p, "router", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, _ string) error {
		_, err := addRouter(d, srv, p, conn, st)
		return err
	})
}

func runAction(ctx context.Context, args []string) error {
	p, err := parse(partFlags("action"), args, append(partGroups, config.GroupAction, config.GroupAI)...)
	if err != nil {
		return err
	}
	if len(p.args) != 1 {
		return usageError("action <module>; built-in modules: %v", builtin.Names())
	}
	return runPart(ctx, p, "action "+p.args[0], true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, _ string) error {
		m, err := builtin.Module(moduleDeps(p, st, conn), p.args[0])
		if err != nil {
			return usageError("%v", err)
		}
		return addAction(d, srv, p, conn, st, m)
	})
}

func runCollector(ctx context.Context, args []string) error {
	p, err := parse(partFlags("collector"), args, append(partGroups, config.GroupCollector, config.GroupTwitch, config.GroupDiscord, config.GroupSlack)...)
	if err != nil {
		return err
	}
	if len(p.args) != 1 {
		return usageError("collector <platform>; platforms: %v", schemas.Platforms)
	}
	switch p.args[0] {
	case schemas.PlatformConsole:
		if !p.ConsoleEnabled {
			return usageError("the console platform trusts the role a sender claims; it runs outside `dev` only with WADDLEBOT_CONSOLE_ENABLED=true")
		}
		return runPart(ctx, p, "collector console", false, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, _ *store.Store, _ string) error {
			return addConsole(d, srv, p, conn)
		})
	case schemas.PlatformTwitch:
		return runPart(ctx, p, "collector twitch", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, addr string) error {
			return addTwitch(d, srv, p, conn, st, addr, false)
		})
	case schemas.PlatformDiscord:
		return runPart(ctx, p, "collector discord", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, addr string) error {
			return addDiscord(ctx, d, srv, p, conn, st, addr, false)
		})
	case schemas.PlatformSlack:
		return runPart(ctx, p, "collector slack", true, func(d *daemon.Daemon, srv *ops.Server, conn *natsx.Conn, st *store.Store, addr string) error {
			return addSlack(ctx, d, srv, p, conn, st, addr, false)
		})
	}
	return usageError("unknown platform %q; platforms: %v", p.args[0], schemas.Platforms)
}
