package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/dlq"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

var ctx = context.Background()

func deadLetter(t *testing.T, js jetstream.JetStream, d schemas.DeadLetter) {
	t.Helper()
	body, _ := json.Marshal(d)
	if _, err := js.Publish(ctx, schemas.DLQSubject(d.Stream), body, jetstream.WithMsgID(d.MsgID())); err != nil {
		t.Fatal(err)
	}
}

func TestListShowReplay(t *testing.T) {
	env := natstest.Start(t, nil)
	js := env.Conn.JS
	deadLetter(t, js, schemas.DeadLetter{Version: 1, Stream: schemas.StreamEvents, Consumer: "router",
		Subject: "wb.events.console.demo.chat", Sequence: 7, Body: []byte("not json"),
		Headers: map[string][]string{"Nats-Msg-Id": {"ev-1"}, "X-Trace": {"abc"}}, Reason: "undecodable", FailedAt: time.Now()})
	deadLetter(t, js, schemas.DeadLetter{Version: 1, Stream: schemas.StreamCommands, Consumer: "core",
		Subject: "wb.cmd.core", Sequence: 3, Body: []byte(`{"x":1}`), Reason: "failed 5 times", Failures: 5, FailedAt: time.Now()})

	all, err := dlq.List(ctx, js, "", 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("list = %v, %v", all, err)
	}
	onlyCmds, err := dlq.List(ctx, js, schemas.StreamCommands, 0)
	if err != nil || len(onlyCmds) != 1 || onlyCmds[0].Letter.Consumer != "core" {
		t.Fatalf("filtered list = %v, %v", onlyCmds, err)
	}
	if limited, _ := dlq.List(ctx, js, "", 1); len(limited) != 1 {
		t.Fatalf("limit ignored: %d", len(limited))
	}
	first := all[0]
	shown, err := dlq.Show(ctx, js, first.Seq)
	if err != nil || shown.Letter.Reason != "undecodable" {
		t.Fatalf("show = %+v, %v", shown, err)
	}
	if _, err := dlq.Show(ctx, js, 999); !errors.Is(err, dlq.ErrNotFound) {
		t.Fatalf("show missing: %v", err)
	}

	// Replay without removal, twice: the second is a duplicate of the first.
	id, err := dlq.Replay(ctx, js, first.Seq, false)
	if err != nil {
		t.Fatal(err)
	}
	if id != schemas.ReplayMsgID("ev-1", first.Seq) {
		t.Fatalf("replay id = %s", id)
	}
	if _, err := dlq.Replay(ctx, js, first.Seq, true); !errors.Is(err, dlq.ErrAlreadyReplayed) {
		t.Fatalf("second replay: %v, want ErrAlreadyReplayed", err)
	}
	if _, err := dlq.Show(ctx, js, first.Seq); err != nil {
		t.Fatalf("a letter whose replay was dropped was removed: %v", err)
	}
	events, _ := js.Stream(ctx, schemas.StreamEvents)
	info, _ := events.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("WB_EVENTS holds %d messages after two replays of one letter, want 1", info.State.Msgs)
	}
	m, err := events.GetMsg(ctx, info.State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "not json" || m.Subject != "wb.events.console.demo.chat" || m.Header.Get("X-Trace") != "abc" {
		t.Fatalf("replayed %s %q %v", m.Subject, m.Data, m.Header)
	}

	// Replay with removal.
	if _, err := dlq.Replay(ctx, js, all[1].Seq, true); err != nil {
		t.Fatal(err)
	}
	left, _ := dlq.List(ctx, js, "", 0)
	if len(left) != 1 || left[0].Seq != first.Seq {
		t.Fatalf("after removal: %v", left)
	}
}
