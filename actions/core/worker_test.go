package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

const waitLong = 20 * time.Second

func runCore(t *testing.T, conn *natsx.Conn, st *store.Store, instance string) (w *actions.Worker, stop func() error) {
	t.Helper()
	w, err := actions.NewWorker(actions.Config{
		Module:         core.New(core.Config{Catalogue: st, Version: "9.9.9"}),
		Conn:           conn,
		Store:          st,
		HeartbeatEvery: 100 * time.Millisecond,
		InstanceID:     instance,
		Logger:         logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = w.Run(ctx); close(done) }()
	stop = func() error {
		cancel()
		select {
		case <-done:
			return runErr
		case <-time.After(waitLong):
			t.Fatal("core worker did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	actionstest.Eventually(t, waitLong, "core ready", w.Ready)
	return w, stop
}

func TestCoreWorker(t *testing.T) {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	ctx := context.Background()

	notices, err := env.Conn.NC.SubscribeSync(schemas.ControlRegistry)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Conn.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	const instance = "host.example-42"
	_, stop := runCore(t, env.Conn, st, instance)

	t.Run("registers its manifest and says so", func(t *testing.T) {
		msg, err := notices.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no %s notice: %v", schemas.ControlRegistry, err)
		}
		if string(msg.Data) != "core" {
			t.Errorf("notice body %q, want core", msg.Data)
		}
		entries, err := st.Catalogue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Manifest.Name != "core" || entries[0].Manifest.Version != "1.0.0" || !entries[0].Builtin {
			t.Errorf("catalogue %+v, want core 1.0.0, built in", entries)
		}
	})

	t.Run("keeps a heartbeat", func(t *testing.T) {
		kv, err := env.Conn.JS.KeyValue(ctx, streams.BucketHeartbeats)
		if err != nil {
			t.Fatal(err)
		}
		read := func() actions.Heartbeat {
			e, err := kv.Get(ctx, actions.HeartbeatKey("core", instance))
			if err != nil {
				t.Fatalf("heartbeat: %v", err)
			}
			var hb actions.Heartbeat
			if err := json.Unmarshal(e.Value(), &hb); err != nil {
				t.Fatal(err)
			}
			return hb
		}
		hb := read()
		if hb.Module != "core" || hb.Version != "1.0.0" || hb.Instance != instance || hb.StartedAt.IsZero() || hb.At.Before(hb.StartedAt) {
			t.Errorf("heartbeat %+v", hb)
		}
		actionstest.Eventually(t, waitLong, "a fresher heartbeat", func() bool { return read().At.After(hb.At) })
	})

	t.Run("answers ping once per invocation", func(t *testing.T) {
		inv := actionstest.Invocation("core", "ping")
		actionstest.Publish(t, env.Conn.JS, inv)
		actionstest.Eventually(t, waitLong, "pong", func() bool { return len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) == 1 })
		r := actionstest.RepliesTo(t, env.Conn.JS, inv.ID)[0]
		if r.Text != "pong" || r.ID != schemas.ReplyID(inv.ID, 1) || r.Part != 1 || r.Parts != 1 || r.Module != "core" || r.EventID != inv.Event.ID {
			t.Errorf("reply %+v", r.Reply)
		}
		if want := schemas.ReplySubject(schemas.PlatformConsole, actionstest.Channel); r.Subject != want || want != "wb.reply.console.test-channel" {
			t.Errorf("reply on %s, want %s", r.Subject, want)
		}

		// A redelivery of the same invocation, past the commands stream's
		// duplicate window: the reply stream must still hold one pong.
		actionstest.PublishAs(t, env.Conn.JS, inv, inv.ID+":redelivered")
		actionstest.Eventually(t, waitLong, "the second copy handled", func() bool {
			return actionstest.Settled(t, env.Conn.JS, schemas.StreamCommands, "core")
		})
		if got := actionstest.Messages(t, env.Conn.JS, schemas.StreamReplies, ""); len(got) != 1 {
			t.Errorf("WB_REPLIES holds %d messages, want 1", len(got))
		}
	})

	t.Run("help reads the community's catalogue", func(t *testing.T) {
		community, err := st.CreateCommunity(ctx, "test", store.NewCommunity{Name: "penguins", Prefix: "~"})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []schemas.Manifest{
			{Name: "memories", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
				{Name: "quote", Description: "Quotes", Permission: schemas.PermissionEveryone},
				{Name: "url", Permission: schemas.PermissionEveryone}}},
			{Name: "ai", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
				{Name: "ai", Permission: schemas.PermissionEveryone}}},
		} {
			if _, err := st.UpsertManifest(ctx, m, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.SetModule(ctx, "test", community.ID, "ai", false, nil); err != nil {
			t.Fatal(err)
		}
		off := false
		if err := st.SetCommandOverride(ctx, "test", community.ID, "url", store.CommandOverride{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		// core caches the catalogue for a few seconds: nothing before this
		// subtest may ask for it, so the first read sees these modules.

		for command, want := range map[string]string{
			"help":     "Commands: ~about, ~commands, ~help, ~ping, ~quote. Type ~help <command> for details.",
			"commands": "core: ~about ~commands ~help ~ping | memories: ~quote",
			"about":    "WaddleBot 9.9.9: one bot for Twitch, Discord and Slack, with one identity across them.",
		} {
			inv := actionstest.Invocation("core", command)
			inv.Community = community
			actionstest.Publish(t, env.Conn.JS, inv)
			actionstest.Eventually(t, waitLong, command+"'s reply", func() bool { return len(actionstest.RepliesTo(t, env.Conn.JS, inv.ID)) == 1 })
			if got := actionstest.RepliesTo(t, env.Conn.JS, inv.ID)[0].Text; got != want {
				t.Errorf("%s:\n got %q\nwant %q", command, got, want)
			}
		}
	})

	t.Run("removes its heartbeat on shutdown", func(t *testing.T) {
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		kv, err := env.Conn.JS.KeyValue(ctx, streams.BucketHeartbeats)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, actions.HeartbeatKey("core", instance)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("heartbeat after shutdown: %v, want ErrKeyNotFound", err)
		}
	})

	t.Run("an unchanged manifest makes no notice", func(t *testing.T) {
		_, stop := runCore(t, env.Conn, st, "second")
		defer stop()
		if msg, err := notices.NextMsg(300 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
			t.Errorf("notice %v (%v) although the catalogue did not change", msg, err)
		}
	})
}
