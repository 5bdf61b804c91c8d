package natsauth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsauth/natsauthtest"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// collectorScope is what a chat collector (discord, slack) must not do:
// speak for another platform, invoke modules, answer or hear another
// platform's lookups, read the router's or another sender's queue.
func collectorScope(platform, other string) partScope {
	type cons = struct{ stream, durable string }
	return partScope{
		name: platform + " collector", perms: natsauth.CollectorPermissions(platform),
		sentinel: "wb.events." + platform + ".x.chat", allowedSub: schemas.APISubject(platform, "member"),
		pubNo: []string{"wb.events." + other + ".x.chat", "wb.events.twitch.x.chat", "wb.events.console.main.chat",
			"wb.cmd.core", "wb.reply." + platform + ".x", "wb.result.core", "wb.control.registry",
			schemas.APISubject(other, "member")},
		subNo: []string{"wb.cmd.core", "wb.cmd.ai", schemas.APISubject(other, "member"),
			"wb.events." + platform + ".x.chat", "wb.reply." + platform + ".x"},
		consumersNo: []cons{{schemas.StreamCommands, "core"}, {schemas.StreamEvents, streams.ConsumerRouter},
			{schemas.StreamReplies, streams.SenderConsumer(other)}},
	}
}

// collectorWithinScope runs, under a chat collector's own user, everything
// collectors/discord and collectors/slack do on NATS: publish their events,
// consume their replies with the sender's consumer, answer member lookups
// on wb.api.<platform>.member, and use the leases, interactions, windows
// and failures buckets.
func collectorWithinScope(t *testing.T, env *natsauthtest.Env, platform string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn := env.Mint(t, "collector-"+platform, natsauth.CollectorPermissions(platform))

	if err := streams.Verify(ctx, conn.JS); err != nil {
		t.Errorf("%s collector verifying the streams: %v", platform, err)
	}

	// Events out, acknowledged by JetStream.
	if _, err := conn.JS.Publish(ctx, schemas.EventSubject(platform, "C1", schemas.KindChat), []byte(`{}`)); err != nil {
		t.Errorf("%s collector publishing its event: %v", platform, err)
	}

	// Replies in, through the sender's durable consumer, acked.
	if _, err := env.Admin.JS.Publish(ctx, schemas.ReplySubject(platform, "C1"), []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := streams.EnsureConsumer(ctx, conn.JS, schemas.StreamReplies, streams.SenderConsumerConfig(platform, 30*time.Second))
	if err != nil {
		t.Fatalf("%s collector creating its sender consumer: %v", platform, err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatalf("%s collector fetching replies: %v", platform, err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if err := m.DoubleAck(ctx); err != nil {
			t.Errorf("%s collector acking a reply: %v", platform, err)
		}
	}
	if got != 1 {
		t.Errorf("%s collector fetched %d replies, want 1 (fetch: %v)", platform, got, batch.Error())
	}

	// Member lookups: served in the queue group, answered to the asker.
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- collectors.ServeAPI(sctx, collectors.APIServerConfig{Conn: conn, Platform: platform, Logger: logging.Discard(),
			Ops: map[string]collectors.APIOp{"member": func(context.Context, map[string]string) (any, *schemas.APIError) {
				return map[string]string{"id": "U1"}, nil
			}}})
	}()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("%s API: %v", platform, err)
		}
	}()
	natstest.Eventually(t, 30*time.Second, platform+" member lookup answered under the collector's user", func() bool {
		var out struct{ ID string }
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		defer lcancel()
		err := actions.Lookup(lctx, env.Admin.NC, platform, "member", "5e1b7c9d-3a2f-4b6e-8c0d-1f2e3d4c5b6a",
			map[string]string{"name": "alice"}, &out)
		if err != nil {
			t.Logf("lookup: %v", err)
		}
		return err == nil && out.ID == "U1"
	})

	// Buckets: leases (Create, as a lease is taken), interactions, and the
	// sender's windows and failures.
	for _, bucket := range []string{streams.BucketLeases, streams.BucketWindows, streams.BucketFailures} {
		kv, err := conn.JS.KeyValue(ctx, bucket)
		if err != nil {
			t.Errorf("%s collector opening %s: %v", platform, bucket, err)
			continue
		}
		key := platform + ".probe"
		if _, err := kv.Create(ctx, key, []byte("1")); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
			t.Errorf("%s collector writing %s: %v", platform, bucket, err)
		}
		if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) != "1" {
			t.Errorf("%s collector reading %s: %v", platform, bucket, err)
		}
		if err := kv.Delete(ctx, key); err != nil {
			t.Errorf("%s collector deleting from %s: %v", platform, bucket, err)
		}
	}
	in, err := collectors.OpenInteractions(ctx, conn.JS)
	if err != nil {
		t.Fatalf("%s collector opening interactions: %v", platform, err)
	}
	if err := in.Put(ctx, platform, "ev1", collectors.Interaction{Ephemeral: true}); err != nil {
		t.Errorf("%s collector keeping an interaction: %v", platform, err)
	}
	if got, ok, err := in.Get(ctx, platform, "ev1"); err != nil || !ok || !got.Ephemeral {
		t.Errorf("%s collector reading its interaction: %+v %v %v", platform, got, ok, err)
	}
}
