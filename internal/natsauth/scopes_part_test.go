package natsauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsauth/natsauthtest"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// refusedPublish checks that a core publish by user to subject never
// reaches a subscriber: a sentinel the user may publish, sent after it on
// the same connection, arrives first, and order is kept per connection.
func refusedPublish(t *testing.T, admin, user *nats.Conn, subject, sentinel, token string) {
	t.Helper()
	got := collect(t, admin, ">")
	_ = user.Publish(subject, []byte("forbidden "+token))
	if err := user.Publish(sentinel, []byte("sentinel "+token)); err != nil {
		t.Fatal(err)
	}
	if err := user.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		m := wait(t, got, "sentinel after "+subject)
		if m.Subject == subject && string(m.Data) == "forbidden "+token {
			t.Fatalf("publish to %s was allowed", subject)
		}
		if m.Subject == sentinel && string(m.Data) == "sentinel "+token {
			return
		}
	}
}

// refusedSubscribe checks that user's subscription to subject gets nothing
// the admin publishes there, using a subscription the user may hold to
// order a sentinel after it.
func refusedSubscribe(t *testing.T, admin, user *nats.Conn, subject, allowed, token string) {
	t.Helper()
	okCh := collect(t, user, allowed)
	ch := make(chan *nats.Msg, 4)
	_, _ = user.ChanSubscribe(subject, ch)
	_ = user.Flush()
	_ = admin.Publish(subject, []byte("forbidden "+token))
	_ = admin.Publish(allowed, []byte("sentinel "+token))
	_ = admin.Flush()
	for {
		if m := wait(t, okCh, "sentinel after "+subject); string(m.Data) == "sentinel "+token {
			break
		}
	}
	for {
		select {
		case m := <-ch:
			if string(m.Data) == "forbidden "+token {
				t.Fatalf("subscription to %s was allowed", subject)
			}
		default:
			return
		}
	}
}

// jsCtx bounds a JetStream API call that the server refuses: a refused
// request may just go unanswered.
func jsCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// part is one part's user and what it must not do.
type partScope struct {
	name  string
	perms natsauth.Permissions
	// sentinel is a subject the part may publish; allowedSub one it may
	// subscribe to.
	sentinel, allowedSub string
	pubNo, subNo         []string
	// consumersNo are streams on which the part must not create the
	// consumer named by durable (empty: an ephemeral one).
	consumersNo []struct{ stream, durable string }
}

func TestPartsRefusedOutsideScope(t *testing.T) {
	env := natsauthtest.Start(t)
	admin := env.Admin.NC
	type cons = struct{ stream, durable string }
	parts := []partScope{
		{
			name: "router", perms: natsauth.RouterPermissions(),
			sentinel: "wb.cmd.core", allowedSub: "wb.control.registry",
			pubNo: []string{"wb.reply.console.main", "wb.reply.twitch.x", "wb.events.console.main.chat",
				"wb.result.core", "wb.overlay.c.alerts", "wb.api.twitch.channel"},
			subNo:       []string{"wb.cmd.core", "wb.reply.console.main", "wb.events.console.main.chat"},
			consumersNo: []cons{{schemas.StreamCommands, "core"}, {schemas.StreamReplies, "console-sender"}},
		},
		{
			name: "twitch collector", perms: natsauth.CollectorPermissions("twitch"),
			sentinel: "wb.events.twitch.x.chat", allowedSub: "wb.api.twitch.channel",
			pubNo: []string{"wb.events.discord.x.chat", "wb.events.console.main.chat", "wb.cmd.core",
				"wb.reply.twitch.x", "wb.result.core", "wb.control.registry"},
			subNo: []string{"wb.cmd.core", "wb.cmd.ai", "wb.api.discord.user", "wb.events.twitch.x.chat"},
			consumersNo: []cons{{schemas.StreamCommands, "core"}, {schemas.StreamEvents, streams.ConsumerRouter},
				{schemas.StreamReplies, streams.SenderConsumer("discord")}},
		},
		collectorScope("discord", "slack"),
		collectorScope("slack", "discord"),
		{
			name: "core action", perms: natsauth.ActionPermissions("core"),
			sentinel: "wb.reply.console.main", allowedSub: "wb.control.registry",
			pubNo: []string{"wb.events.console.main.chat", "wb.events.twitch.x.chat", "wb.cmd.core", "wb.cmd.ai", "wb.result.core"},
			subNo: []string{"wb.events.console.main.chat", "wb.cmd.ai", "wb.reply.console.main"},
			consumersNo: []cons{{schemas.StreamCommands, "ai"}, {schemas.StreamEvents, streams.ConsumerRouter},
				{schemas.StreamReplies, streams.SenderConsumer("console")}},
		},
		{
			name: "portal", perms: natsauth.PortalPermissions(),
			sentinel: "wb.control.community.c1", allowedSub: "wb.control.registry",
			pubNo:       []string{"wb.events.console.main.chat", "wb.events.twitch.x.chat", "wb.cmd.core", "wb.reply.console.main", "wb.result.core"},
			subNo:       []string{"wb.events.console.main.chat", "wb.cmd.core", "wb.reply.console.main"},
			consumersNo: []cons{{schemas.StreamCommands, "core"}, {schemas.StreamEvents, streams.ConsumerRouter}},
		},
		{
			name: "relay", perms: natsauth.RelayPermissions(),
			sentinel: "wb.ext.weather.invoke", allowedSub: "wb.control.registry",
			pubNo:       []string{"wb.events.console.main.chat", "wb.cmd.core", "wb.result.weather"},
			subNo:       []string{"wb.events.console.main.chat", "wb.cmd.core"},
			consumersNo: []cons{{schemas.StreamEvents, streams.ConsumerRouter}},
		},
	}
	for _, p := range parts {
		t.Run(p.name, func(t *testing.T) {
			// A refused JetStream request goes unanswered until its timeout:
			// the parts run side by side so the timeouts overlap.
			t.Parallel()
			token := strings.ReplaceAll(p.name, " ", "-")
			conn := env.Mint(t, token, p.perms)
			for _, subj := range p.pubNo {
				refusedPublish(t, admin, conn.NC, subj, p.sentinel, token)
			}
			// The stream and consumer API, at the subject level: every
			// request the part must not make never reaches the server.
			api := []string{"$JS.API.STREAM.CREATE.ROGUE", "$JS.API.STREAM.UPDATE." + schemas.StreamEvents,
				"$JS.API.STREAM.DELETE." + schemas.StreamDLQ, "$JS.API.STREAM.PURGE." + schemas.StreamEvents,
				"$JS.API.STREAM.UPDATE.KV_" + streams.BucketHeartbeats}
			for _, c := range p.consumersNo {
				api = append(api, "$JS.API.CONSUMER.CREATE."+c.stream+"."+c.durable, "$JS.API.CONSUMER.DURABLE.CREATE."+c.stream+"."+c.durable,
					"$JS.API.CONSUMER.MSG.NEXT."+c.stream+"."+c.durable)
			}
			for _, subj := range api {
				refusedPublish(t, admin, conn.NC, subj, p.sentinel, token)
			}
			for _, subj := range p.subNo {
				refusedSubscribe(t, admin, conn.NC, subj, p.allowedSub, token)
			}
			if len(p.consumersNo) > 0 {
				c := p.consumersNo[0]
				_, err := conn.JS.CreateOrUpdateConsumer(jsCtx(t), c.stream, jetstream.ConsumerConfig{Durable: c.durable, AckPolicy: jetstream.AckExplicitPolicy})
				if err == nil {
					t.Errorf("%s created consumer %q on %s", p.name, c.durable, c.stream)
				}
			}
			checkNoStreamAdmin(t, env.Admin, conn)
		})
	}
}

// checkNoStreamAdmin checks, through the real JetStream API, that user can
// neither create nor change a stream: only `waddlebot streams apply` (the
// admin) may. Deleting and purging are refused at the subject level above.
func checkNoStreamAdmin(t *testing.T, admin, user *natsx.Conn) {
	t.Helper()
	if _, err := user.JS.CreateStream(jsCtx(t), jetstream.StreamConfig{Name: "ROGUE", Subjects: []string{"rogue.>"}}); err == nil {
		t.Error("created a stream")
	}
	if _, err := admin.JS.Stream(jsCtx(t), "ROGUE"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream ROGUE exists after a refused create (lookup: %v)", err)
	}
	before, err := admin.JS.Stream(jsCtx(t), schemas.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	changed := before.CachedInfo().Config
	changed.MaxAge = time.Minute
	if _, err := user.JS.UpdateStream(jsCtx(t), changed); err == nil {
		t.Error("updated WB_EVENTS")
	}
	after, err := admin.JS.Stream(jsCtx(t), schemas.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.CachedInfo().Config.MaxAge, before.CachedInfo().Config.MaxAge; got != want {
		t.Errorf("WB_EVENTS MaxAge is %s after a refused update, was %s", got, want)
	}
}

// The admin user may create and change streams: `waddlebot streams apply`
// runs under it.
func TestAdminAppliesStreams(t *testing.T) {
	env := natsauthtest.Start(t)
	cfg := streams.Default()
	cfg.EventsMaxBytes = 128 << 20
	cfg.EventsMaxAge = 48 * time.Hour
	if err := streams.Apply(jsCtx(t), env.Admin.JS, cfg); err != nil {
		t.Fatalf("admin applying changed streams: %v", err)
	}
	s, err := env.Admin.JS.Stream(jsCtx(t), schemas.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 48*time.Hour {
		t.Fatalf("WB_EVENTS MaxAge %s after apply, want 48h", got)
	}
}

// Every part does its job under its own user: the console collector
// publishes a !ping and sends the reply, the router routes it and the core
// worker answers, each on a connection allowed only its own scope; the
// portal reads heartbeats, announces changes and reads overlays; parts
// verify the streams they use.
func TestPartsWorkWithinScope(t *testing.T) {
	env := natsauthtest.Start(t)
	st := storetest.New(t)
	d := config.Defaults()
	log := logging.Discard()
	ctx, cancel := context.WithCancel(context.Background())
	var stops []chan struct{}
	t.Cleanup(func() {
		cancel()
		for _, s := range stops {
			<-s
		}
	})
	run := func(name string, run func(context.Context) error, ready func() bool) {
		done := make(chan struct{})
		stops = append(stops, done)
		go func() {
			defer close(done)
			if err := run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("%s stopped: %v", name, err)
			}
		}()
		natstest.Eventually(t, 30*time.Second, name+" to be ready under its own user", ready)
	}

	w, err := actions.NewWorker(actions.Config{Module: core.New(core.Config{Catalogue: st, Version: "test"}),
		Conn: env.Mint(t, "action-core", natsauth.ActionPermissions("core")), Store: st, Concurrency: 4, MaxFailures: 3,
		Backoff: []time.Duration{20 * time.Millisecond}, HeartbeatEvery: time.Second, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run("core worker", w.Run, w.Ready)
	rt, err := router.New(router.Config{Conn: env.Mint(t, "router", natsauth.RouterPermissions()), Store: st,
		Concurrency: 8, MaxFailures: 3, Backoff: []time.Duration{20 * time.Millisecond},
		UserRateLimit: d.UserRateLimit, UserRateWindow: d.UserRateWindow, ChannelRateLimit: d.ChannelRateLimit,
		ChannelRateWindow: d.ChannelRateWindow, CacheTTL: time.Minute, AliasDepth: d.AliasDepth, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run("router", rt.Run, rt.Ready)
	cc := env.Mint(t, "collector-console", natsauth.CollectorPermissions(schemas.PlatformConsole))
	con := console.New(console.Config{Publisher: collectors.NewPublisher(cc.JS, log), Conn: cc, Logger: log})
	sender, err := collectors.NewSender(collectors.SenderConfig{Platform: con, Conn: cc, Budget: 0, Concurrency: 4,
		MaxFailures: 3, Backoff: []time.Duration{20 * time.Millisecond}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	run("console sender", sender.Run, sender.Ready)

	delivered, stop := con.Subscribe("main")
	defer stop()
	// The collector's own user publishes the event, as the console
	// collector does for `waddlebot say`.
	ev, err := console.NewEvent(console.Message{Channel: "main", User: "alice", Text: "!ping"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	defer pcancel()
	if err := collectors.NewPublisher(cc.JS, log).Publish(pctx, ev); err != nil {
		t.Fatalf("the console collector publishing its event: %v", err)
	}
	select {
	case r := <-delivered:
		if r.Text != "pong" || r.EventID != ev.ID {
			t.Fatalf("delivered %q for event %s, want pong for %s", r.Text, r.EventID, ev.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no pong delivered with every part under its own user")
	}
	if dls := natstest.Decode[schemas.DeadLetter](t, env.Admin.JS, schemas.StreamDLQ, ""); len(dls) != 0 {
		t.Fatalf("dead letters: %s: %s", dls[0].Subject, dls[0].Reason)
	}

	for _, platform := range []string{schemas.PlatformDiscord, schemas.PlatformSlack} {
		t.Run(platform+" collector", func(t *testing.T) { collectorWithinScope(t, env, platform) })
	}

	t.Run("portal", func(t *testing.T) {
		portal := env.Mint(t, "portal", natsauth.PortalPermissions())
		// The modules page: the heartbeats the core worker wrote.
		kv, err := portal.JS.KeyValue(jsCtx(t), streams.BucketHeartbeats)
		if err != nil {
			t.Fatalf("portal opening heartbeats: %v", err)
		}
		keys, err := kv.ListKeys(jsCtx(t))
		if err != nil {
			t.Fatalf("portal listing heartbeats: %v", err)
		}
		found := false
		for k := range keys.Keys() {
			found = found || strings.HasPrefix(k, "core.")
		}
		if !found {
			t.Error("portal sees no heartbeat of core")
		}
		// Browser sources: an overlay item the admin publishes, read back.
		if _, err := env.Admin.JS.Publish(jsCtx(t), "wb.overlay.c1.alerts", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		oc, err := portal.JS.OrderedConsumer(jsCtx(t), schemas.StreamOverlay, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"wb.overlay.c1.>"}})
		if err != nil {
			t.Fatalf("portal reading overlays: %v", err)
		}
		m, err := oc.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil || m.Subject() != "wb.overlay.c1.alerts" {
			t.Fatalf("portal overlay read: %v", err)
		}
		// A ticker page opens on the latest item of its subject.
		ov, err := portal.JS.Stream(jsCtx(t), schemas.StreamOverlay)
		if err != nil {
			t.Fatalf("portal opening the overlay stream: %v", err)
		}
		if last, err := ov.GetLastMsgForSubject(jsCtx(t), "wb.overlay.c1.alerts"); err != nil || last.Subject != "wb.overlay.c1.alerts" {
			t.Fatalf("portal reading the latest overlay item: %v", err)
		}
		// Configuration changes: announced to the routers.
		ch := collect(t, env.Admin.NC, "wb.control.>")
		if err := portal.NC.Publish(schemas.ControlCommunity("c1"), nil); err != nil {
			t.Fatal(err)
		}
		_ = portal.NC.Flush()
		if m := wait(t, ch, "the portal's control notice"); m.Subject != schemas.ControlCommunity("c1") {
			t.Fatalf("control notice on %s", m.Subject)
		}
	})
}
