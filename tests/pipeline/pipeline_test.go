package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/internal/dlq"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// One chat message in, one reply out, through every stream and every part.
func TestPingRoundTrip(t *testing.T) {
	h := newHarness(t)
	h.startAll()
	seen := h.watchConsole("demo")

	ev, replies := h.say("demo", "alice", "!ping")
	invID := schemas.InvocationID(ev.ID, core.Name, "cmd:ping")
	want := schemas.ReplyID(invID, 1)
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1: %+v", len(replies), replies)
	}
	r := replies[0]
	if r.ID != want || r.Text != "pong" {
		t.Errorf("reply %q with id %s, want \"pong\" with id %s", r.Text, r.ID, want)
	}
	if r.InvocationID != invID || r.EventID != ev.ID || r.Module != core.Name {
		t.Errorf("reply names invocation %s, event %s, module %s; want %s, %s, core", r.InvocationID, r.EventID, r.Module, invID, ev.ID)
	}
	if r.Target.Platform != schemas.PlatformConsole || r.Target.ChannelID != "demo" || r.Part != 1 || r.Parts != 1 {
		t.Errorf("reply target %+v part %d/%d, want console/demo 1/1", r.Target, r.Part, r.Parts)
	}
	eventually(t, "the console sender to deliver the pong", func() bool { return seen.count(want) > 0 })
	h.settle()

	// What the router published: one invocation, for a provisional
	// community it made for the new channel.
	var invs []schemas.Invocation
	for _, m := range h.messages(schemas.StreamCommands, "") {
		var inv schemas.Invocation
		if err := json.Unmarshal(m.Data, &inv); err != nil {
			t.Fatalf("invocation at %d: %v", m.Sequence, err)
		}
		if inv.Event.ID == ev.ID {
			invs = append(invs, inv)
		}
		if id := m.Header.Get(jetstream.MsgIDHeader); id != inv.ID {
			t.Errorf("invocation %s published with Nats-Msg-Id %q", inv.ID, id)
		}
	}
	if len(invs) != 1 || invs[0].ID != invID || invs[0].Route != "cmd:ping" || !invs[0].Community.Provisional || invs[0].Community.Prefix != "!" {
		t.Errorf("invocations for the event: %+v", invs)
	}
	if n := len(h.replies(want)); n != 1 {
		t.Errorf("WB_REPLIES holds %d copies of the pong, want 1", n)
	}
	if n := seen.count(want); n != 1 {
		t.Errorf("the console sender delivered the pong %d times, want 1", n)
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %s", describe(dls...))
	}
}

// A malformed event and an invalid one are dead-lettered by the router at
// once, a valid event the router kept failing on is dead-lettered at the
// failure limit, the pipeline serves others meanwhile, and `dlq replay`
// puts each back: the malformed one dead-letters again, the valid one is
// answered.
func TestMalformedEventDeadLetteredAndReplayable(t *testing.T) {
	h := newHarness(t)
	h.startAll()
	subject := schemas.EventSubject(schemas.PlatformConsole, "demo", schemas.KindChat)

	h.publish(subject, []byte("not json"), "")
	invalid := chatEvent(t, "demo", "mallory", "!ping")
	invalid.ID = "not-a-uuid"
	invalidBody := mustJSON(t, invalid)
	h.publish(subject, invalidBody, "")
	h.expectPong("demo", "bob")

	letters := h.waitDeadLetters(schemas.StreamEvents, 2)
	var malformed, bad dlq.Entry
	for _, e := range letters {
		switch string(e.Letter.Body) {
		case "not json":
			malformed = e
		case string(invalidBody):
			bad = e
		}
	}
	if malformed.Seq == 0 || bad.Seq == 0 {
		t.Fatalf("dead letters do not hold the two bad events byte for byte: %s", describe(letters...))
	}
	for _, e := range []dlq.Entry{malformed, bad} {
		d := e.Letter
		if d.Stream != schemas.StreamEvents || d.Consumer != streams.ConsumerRouter || d.Subject != subject || d.Failures != 0 || d.Version != schemas.Version {
			t.Errorf("dead letter %d: stream %s consumer %s subject %s failures %d version %d", e.Seq, d.Stream, d.Consumer, d.Subject, d.Failures, d.Version)
		}
	}
	if !strings.Contains(malformed.Letter.Reason, "undecodable event") {
		t.Errorf("malformed event's reason %q does not say it is undecodable", malformed.Letter.Reason)
	}
	if !containsAll(bad.Letter.Reason, "invalid envelope", "not-a-uuid") {
		t.Errorf("invalid event's reason %q does not say what is invalid", bad.Letter.Reason)
	}

	// Replaying the malformed event republishes it byte for byte: the
	// router dead-letters it again, from its new place in WB_EVENTS.
	replayID := h.replay(malformed.Seq, false)
	letters = h.waitDeadLetters(schemas.StreamEvents, 3)
	again := letters[len(letters)-1]
	if string(again.Letter.Body) != "not json" || again.Letter.Sequence == malformed.Letter.Sequence ||
		headerID(again.Letter.Headers) != replayID || !strings.Contains(again.Letter.Reason, "undecodable event") {
		t.Errorf("the replayed malformed event's dead letter (replayed as %s): %s", replayID, describe(again))
	}
	// Replaying the same letter twice is one replay: the duplicate window
	// drops the second.
	before := len(h.messages(schemas.StreamEvents, ""))
	rctx, rcancel := bg()
	defer rcancel()
	if id, err := dlq.Replay(rctx, h.client.JS, malformed.Seq, false); !errors.Is(err, dlq.ErrAlreadyReplayed) || id != replayID {
		t.Errorf("second replay of %d: id %s (first %s), err %v; want ErrAlreadyReplayed", malformed.Seq, id, replayID, err)
	}
	if after := len(h.messages(schemas.StreamEvents, "")); after != before {
		t.Errorf("a second replay of one dead letter added %d events", after-before)
	}

	// A valid event the router fails on: with a table it reads gone, a
	// command on a channel it has not cached fails every time, and is
	// dead-lettered at the failure limit. Commands on a cached channel are
	// still answered meanwhile.
	h.exec(`ALTER TABLE command_overrides RENAME TO command_overrides_away`)
	lobby := h.watchConsole("lobby")
	stuck := h.post("lobby", "carol", "!ping")
	letters = h.waitDeadLetters(schemas.StreamEvents, 4)
	failed := letters[len(letters)-1]
	if d := failed.Letter; headerID(d.Headers) != stuck.ID || d.Failures != maxFailures ||
		!containsAll(d.Reason, "failed 3 times", "command_overrides") {
		t.Fatalf("dead letter of the event the router kept failing on: %s", describe(failed))
	}
	h.expectPong("demo", "dave")
	if n := len(h.repliesToEvent(stuck.ID)); n != 0 {
		t.Fatalf("the dead-lettered event has %d replies", n)
	}

	// Fixed, replayed (and removed from the dead-letter stream): answered.
	h.exec(`ALTER TABLE command_overrides_away RENAME TO command_overrides`)
	h.replay(failed.Seq, true)
	want := pingReplyID(stuck.ID)
	eventually(t, "the replayed event's pong to be delivered", func() bool { return lobby.count(want) > 0 })
	if text := lobby.text(want); text != "pong" {
		t.Errorf("the replayed event was answered %q", text)
	}
	ctx, cancel := bg()
	defer cancel()
	if _, err := dlq.Show(ctx, h.client.JS, failed.Seq); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("the replayed dead letter is still there: %v", err)
	}
	h.settle()
	if n := len(h.replies(want)); n != 1 {
		t.Errorf("%d replies to the replayed event, want 1", n)
	}
	if n := len(h.deadLetters(schemas.StreamEvents)); n != 3 {
		t.Errorf("%d dead letters from WB_EVENTS, want 3", n)
	}
	if dls := h.deadLetters(schemas.StreamCommands); len(dls) != 0 {
		t.Errorf("dead letters from WB_COMMANDS: %s", describe(dls...))
	}
}

// An invocation that fails Validate and one that is not JSON are
// dead-lettered by the module's worker at once; other commands keep working.
func TestInvalidInvocationDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.startAll()
	subject := schemas.CommandSubject(core.Name)

	inv := actionstest.Invocation(core.Name, "ping")
	inv.Deadline = time.Time{}
	invalidBody := mustJSON(t, inv)
	h.publish(subject, invalidBody, inv.ID)
	h.publish(subject, []byte(`{"version": 1, "id": `), "garbage-1")
	h.expectPong("demo", "bob")

	letters := h.waitDeadLetters(schemas.StreamCommands, 2)
	var invalid, garbage dlq.Entry
	for _, e := range letters {
		switch headerID(e.Letter.Headers) {
		case inv.ID:
			invalid = e
		case "garbage-1":
			garbage = e
		}
	}
	if invalid.Seq == 0 || garbage.Seq == 0 {
		t.Fatalf("dead letters: %s", describe(letters...))
	}
	for _, e := range []dlq.Entry{invalid, garbage} {
		d := e.Letter
		if d.Stream != schemas.StreamCommands || d.Consumer != core.Name || d.Subject != subject || d.Failures != 0 {
			t.Errorf("dead letter %d: stream %s consumer %s subject %s failures %d", e.Seq, d.Stream, d.Consumer, d.Subject, d.Failures)
		}
	}
	if string(invalid.Letter.Body) != string(invalidBody) || !containsAll(invalid.Letter.Reason, "invalid envelope", "no deadline") {
		t.Errorf("invalid invocation's dead letter: reason %q", invalid.Letter.Reason)
	}
	if string(garbage.Letter.Body) != `{"version": 1, "id": ` || !strings.Contains(garbage.Letter.Reason, "undecodable invocation") {
		t.Errorf("garbage invocation's dead letter: body %q reason %q", garbage.Letter.Body, garbage.Letter.Reason)
	}
	if n := len(h.repliesToEvent(inv.Event.ID)); n != 0 {
		t.Errorf("the invalid invocation got %d replies", n)
	}

	// Replayed as it is, it is dead-lettered again.
	replayID := h.replay(invalid.Seq, true)
	letters = h.waitDeadLetters(schemas.StreamCommands, 2)
	var again *dlq.Entry
	for i, e := range letters {
		if headerID(e.Letter.Headers) == replayID {
			again = &letters[i]
		}
	}
	if again == nil || string(again.Letter.Body) != string(invalidBody) || !strings.Contains(again.Letter.Reason, "no deadline") {
		t.Fatalf("the replayed invalid invocation was not dead-lettered again: %s", describe(letters...))
	}
	h.expectPong("demo", "carol")
	h.settle()
	if n := len(h.deadLetters(schemas.StreamCommands)); n != 2 {
		t.Errorf("%d dead letters from WB_COMMANDS, want 2 (garbage, and the invalid one replayed)", n)
	}
	if dls := h.deadLetters(schemas.StreamEvents); len(dls) != 0 {
		t.Errorf("dead letters from WB_EVENTS: %s", describe(dls...))
	}
}

// A handler that keeps failing is retried up to the limit and dead-lettered
// with its error while the pipeline answers others; once fixed, replaying
// the dead letter runs it once more, with the failed attempts' writes
// rolled back.
func TestFailingHandlerDeadLetteredThenReplayed(t *testing.T) {
	h := newHarness(t)
	flaky := newEffectModule(h, "flaky", "fixed")
	flaky.broken.Store(true)
	h.startAll(flaky.module())
	seen := h.watchConsole("demo")

	ev := h.post("demo", "alice", "!flaky")
	invID := schemas.InvocationID(ev.ID, "flaky", "cmd:flaky")
	letters := h.waitDeadLetters(schemas.StreamCommands, 1)
	entry := letters[0]
	d := entry.Letter
	if d.Stream != schemas.StreamCommands || d.Consumer != "flaky" || d.Subject != schemas.CommandSubject("flaky") ||
		headerID(d.Headers) != invID || d.Failures != maxFailures {
		t.Errorf("dead letter: stream %s consumer %s subject %s id %s failures %d", d.Stream, d.Consumer, d.Subject, headerID(d.Headers), d.Failures)
	}
	if !containsAll(d.Reason, "failed 3 times", "flaky: its backend is broken (call 3)") {
		t.Errorf("reason %q does not carry the handler's error", d.Reason)
	}
	if n := flaky.calls.Load(); n != maxFailures {
		t.Errorf("the handler ran %d times, want %d", n, maxFailures)
	}
	h.expectPong("demo", "bob")
	if n := len(h.repliesToEvent(ev.ID)); n != 0 {
		t.Errorf("the failing invocation got %d replies", n)
	}
	if n := flaky.rows(h, ""); n != 0 {
		t.Errorf("the failed attempts left %d rows", n)
	}

	flaky.broken.Store(false)
	h.replay(entry.Seq, true)
	want := schemas.ReplyID(invID, 1)
	eventually(t, "the replayed invocation's reply to be delivered", func() bool { return seen.count(want) > 0 })
	if text := seen.text(want); text != "fixed 1" {
		t.Errorf("reply %q, want \"fixed 1\"", text)
	}
	h.settle()
	if n := flaky.rows(h, invID); n != 1 || flaky.rows(h, "") != 1 {
		t.Errorf("%d rows for the invocation (%d in all), want 1", n, flaky.rows(h, ""))
	}
	if n := len(h.replies(want)); n != 1 {
		t.Errorf("%d replies, want 1", n)
	}
	if n := h.count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NOT NULL`, invID); n != 1 {
		t.Errorf("the outbox row of the replayed invocation is not marked sent")
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters after the replay: %s", describe(dls...))
	}
	ctx, cancel := bg()
	defer cancel()
	if _, err := dlq.Show(ctx, h.client.JS, entry.Seq); !errors.Is(err, dlq.ErrNotFound) {
		t.Errorf("the replayed dead letter is still there: %v", err)
	}
}

// A !ping delivered twice gives one reply with the contract's id: a second
// copy of the event (a platform's or collector's retry that got past the
// event window) gives the same invocation id, which WB_COMMANDS' window
// drops; a second copy of the invocation (a worker that died before its
// ack) gives the same reply id, which WB_REPLIES' window drops.
func TestRedeliveredPingSameReplyID(t *testing.T) {
	h := newHarness(t)
	h.startAll()
	seen := h.watchConsole("demo")

	ev := chatEvent(t, "demo", "alice", "!ping")
	invID := schemas.InvocationID(ev.ID, core.Name, "cmd:ping")
	want := schemas.ReplyID(invID, 1)
	h.publishEvent(ev, ev.ID)
	second := h.publishEvent(ev, ev.ID+":again")
	if second.Duplicate {
		t.Fatal("the second copy of the event was dropped; the test needs both in WB_EVENTS")
	}
	eventually(t, "the router to route both copies", func() bool {
		return h.consumerInfo(schemas.StreamEvents, streams.ConsumerRouter).AckFloor.Stream >= second.Sequence
	})
	h.settle()
	copies := 0
	var stored []byte
	for _, m := range h.messages(schemas.StreamCommands, "") {
		if m.Header.Get(jetstream.MsgIDHeader) == invID {
			copies++
			stored = m.Data
		}
	}
	if copies != 1 {
		t.Fatalf("WB_COMMANDS holds %d invocations with id %s, want 1", copies, invID)
	}
	replies := h.repliesToEvent(ev.ID)
	if len(replies) != 1 || replies[0].ID != want || replies[0].Text != "pong" {
		t.Fatalf("replies to the event: %+v, want one pong with id %s", replies, want)
	}

	// The invocation comes again, byte for byte, past its own window: core
	// runs again and publishes the same reply id.
	again := h.publish(schemas.CommandSubject(core.Name), stored, invID+":again")
	eventually(t, "core to handle the second copy", func() bool {
		return h.consumerInfo(schemas.StreamCommands, core.Name).AckFloor.Stream >= again.Sequence
	})
	h.settle()
	if replies := h.repliesToEvent(ev.ID); len(replies) != 1 || replies[0].ID != want {
		t.Errorf("after the invocation came twice: %+v, want one reply with id %s", replies, want)
	}
	if n := seen.count(want); n != 1 {
		t.Errorf("the console sender delivered the pong %d times, want 1", n)
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %s", describe(dls...))
	}
}
