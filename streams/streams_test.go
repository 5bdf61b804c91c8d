package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

var ctx = context.Background()

func TestDefinitionsFollowTheContract(t *testing.T) {
	cfg := streams.Default()
	want := map[string]string{
		schemas.StreamEvents: "wb.events.>", schemas.StreamCommands: "wb.cmd.>", schemas.StreamReplies: "wb.reply.>",
		schemas.StreamResults: "wb.result.>", schemas.StreamOverlay: "wb.overlay.>", schemas.StreamDLQ: "wb.dlq.>",
	}
	for _, s := range cfg.Streams() {
		if want[s.Name] != s.Subjects[0] || len(s.Subjects) != 1 {
			t.Errorf("%s subjects %v", s.Name, s.Subjects)
		}
		if s.Retention != jetstream.LimitsPolicy {
			t.Errorf("%s retention %v, want limits", s.Name, s.Retention)
		}
		if s.Duplicates > s.MaxAge {
			t.Errorf("%s duplicate window %s exceeds MaxAge %s", s.Name, s.Duplicates, s.MaxAge)
		}
		delete(want, s.Name)
	}
	if len(want) != 0 {
		t.Errorf("streams missing: %v", want)
	}
	// A duplicate window configured past MaxAge is clamped, never rejected by the server.
	cfg.OverlayDuplicates = 2 * time.Hour
	for _, s := range cfg.Streams() {
		if s.Name == schemas.StreamOverlay && s.Duplicates != s.MaxAge {
			t.Errorf("overlay duplicates %s not clamped to %s", s.Duplicates, s.MaxAge)
		}
	}
}

func TestApplyIsIdempotentAndUpdates(t *testing.T) {
	env := natstest.Start(t, nil)
	cfg := env.Streams
	if err := streams.Apply(ctx, env.Conn.JS, cfg); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	cfg.EventsMaxAge = 48 * time.Hour
	if err := streams.Apply(ctx, env.Conn.JS, cfg); err != nil {
		t.Fatal(err)
	}
	s, err := env.Conn.JS.Stream(ctx, schemas.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 48*time.Hour {
		t.Fatalf("MaxAge after update = %s", got)
	}
	if err := streams.Verify(ctx, env.Conn.JS); err != nil {
		t.Fatal(err)
	}
	// Per-key TTLs, which cooldowns need, are on.
	kv, err := env.Conn.JS.KeyValue(ctx, streams.BucketCooldowns)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "k", []byte("v"), jetstream.KeyTTL(time.Second)); err != nil {
		t.Fatalf("per-key TTL refused: %v", err)
	}
}

func TestVerifyRefusesAMissingOrWrongStream(t *testing.T) {
	srv, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	conn := natstest.Connect(t, srv)
	if err := streams.Verify(ctx, conn.JS); !errors.Is(err, streams.ErrNotApplied) {
		t.Fatalf("bare server verified: %v", err)
	}
	if err := streams.Apply(ctx, conn.JS, streams.Default()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.JS.UpdateStream(ctx, jetstream.StreamConfig{Name: schemas.StreamReplies, Subjects: []string{"wb.reply.console.>"}}); err != nil {
		t.Fatal(err)
	}
	if err := streams.Verify(ctx, conn.JS); !errors.Is(err, streams.ErrNotApplied) {
		t.Fatalf("wrong subjects verified: %v", err)
	}
}
