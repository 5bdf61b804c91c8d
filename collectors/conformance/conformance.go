// Package conformance is the suite every collector passes: chat becomes one
// valid event with a deterministic id, platform redeliveries and the bot's
// own messages produce nothing more, replies reach the platform once each and
// in order within the send budget, transient send failures are retried and
// undecodable replies are dead-lettered without blocking the rest.
//
// A collector's test calls Run with a Harness that drives a fake of its
// platform:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Harness { return newFakeTwitch(t) })
//	}
package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Harness runs one collector against a fake of its platform.
type Harness interface {
	// Platform is the platform name as subjects spell it.
	Platform() string
	// Start runs the collector's intake and its collectors.Sender (with a
	// SenderConfig carrying budget and window) against conn until t ends,
	// and returns once the sender is Ready. A short SenderConfig.Backoff
	// (tens of milliseconds) keeps the retry tests quick.
	Start(t *testing.T, conn *natsx.Conn, budget int, window time.Duration)
	// InjectChat makes the fake platform deliver a chat message to the
	// collector; msg.ID is the platform's message id. It may return before
	// the event is published, but the collector must publish one
	// connection's messages in the order the platform delivered them: the
	// suite injects a sentinel message after the one under test and takes
	// the sentinel's event as proof that the earlier one was handled.
	InjectChat(t *testing.T, msg ChatMessage)
	// Sent lists what the platform accepted, in order.
	Sent() []SentMessage
	// FailNextSends makes the platform refuse the next n sends transiently,
	// like a 5xx.
	FailNextSends(n int)
}

// EventKeyer is implemented by harnesses whose platform key is not the
// message id alone (Slack: "<team>:<channel>:<ts>"). Without it the suite
// expects schemas.EventID(platform, msg.ID).
type EventKeyer interface {
	EventKey(msg ChatMessage) string
}

// LoginKeyer is implemented by harnesses whose platform has no login to
// address users by (Slack: people are mentioned as <@U…>, so the user id is
// the login). Without it the suite expects msg.Login.
type LoginKeyer interface {
	ExpectedLogin(msg ChatMessage) string
}

// ChatMessage is a chat message as the fake platform delivers it. The suite
// uses channel id "c0nf_chan-1", user id "1001" and logins "conformer" and
// (for the bot) "waddlebot": fakes must accept them.
type ChatMessage struct {
	ChannelID, UserID, Login, Text, ID string
	// FromBot marks a message the bot itself posted.
	FromBot bool
}

// SentMessage is what the fake platform received.
type SentMessage struct {
	ChannelID, Text string
}

// Settings of the suite. Budgets in the tests that are not about the budget
// are generous, so that they never defer.
const (
	roomyBudget = 1000
	roomyWindow = time.Minute
	waitLimit   = 20 * time.Second
	channelID   = "c0nf_chan-1"
)

// Run runs every conformance test; each gets its own NATS server and a
// fresh harness from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("ChatBecomesOneValidEvent", func(t *testing.T) { chatBecomesOneValidEvent(t, newHarness) })
	t.Run("RedeliveredMessageIsOneEvent", func(t *testing.T) { redeliveredMessageIsOneEvent(t, newHarness) })
	t.Run("OwnMessagesAreDropped", func(t *testing.T) { ownMessagesAreDropped(t, newHarness) })
	t.Run("RepliesArriveOnceInOrder", func(t *testing.T) { repliesArriveOnceInOrder(t, newHarness) })
	t.Run("SendBudgetHolds", func(t *testing.T) { sendBudgetHolds(t, newHarness) })
	t.Run("TransientSendFailureIsRetried", func(t *testing.T) { transientSendFailureIsRetried(t, newHarness) })
	t.Run("UndecodableReplyIsDeadLettered", func(t *testing.T) { undecodableReplyIsDeadLettered(t, newHarness) })
}

// rig is one test's NATS, harness and observer connection.
type rig struct {
	h        Harness
	platform string
	// watch is the suite's own connection, as an outside observer's.
	watch *natsx.Conn
}

func start(t *testing.T, newHarness func(t *testing.T) Harness, budget int, window time.Duration) *rig {
	t.Helper()
	env := natstest.Start(t, nil)
	h := newHarness(t)
	platform := h.Platform()
	if !schemas.ValidPlatform(platform) {
		t.Fatalf("harness platform %q is not one of %v", platform, schemas.Platforms)
	}
	h.Start(t, env.Conn, budget, window)
	return &rig{h: h, platform: platform, watch: env.Connect(t)}
}

// expectedID is the event id a chat message must get.
func (r *rig) expectedID(msg ChatMessage) string {
	key := msg.ID
	if k, ok := r.h.(EventKeyer); ok {
		key = k.EventKey(msg)
	}
	return schemas.EventID(r.platform, key)
}

func chat(id, text string) ChatMessage {
	return ChatMessage{ChannelID: channelID, UserID: "1001", Login: "conformer", Text: text, ID: id}
}

// storedEvent is one message of WB_EVENTS.
type storedEvent struct {
	Subject  string
	MsgID    string
	Event    schemas.Event
	DecodeOK bool
}

func (r *rig) events(t *testing.T) []storedEvent {
	t.Helper()
	var out []storedEvent
	for _, m := range readStream(t, r.watch, schemas.StreamEvents) {
		se := storedEvent{Subject: m.Subject, MsgID: m.Header.Get(jetstream.MsgIDHeader)}
		se.DecodeOK = json.Unmarshal(m.Data, &se.Event) == nil
		out = append(out, se)
	}
	return out
}

// eventsWithID are the stored events carrying id.
func (r *rig) eventsWithID(t *testing.T, id string) []storedEvent {
	var out []storedEvent
	for _, e := range r.events(t) {
		if e.Event.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// injectSentinel injects one more message and waits for its event: every
// message injected before it has then been handled.
func (r *rig) injectSentinel(t *testing.T, id string) {
	t.Helper()
	msg := chat(id, "sentinel "+id)
	r.h.InjectChat(t, msg)
	// Found by its id or its text, so that a collector with wrong ids or
	// mangled text fails on the assertion about them rather than here.
	want := r.expectedID(msg)
	eventually(t, "the sentinel message's event", func() bool {
		for _, e := range r.events(t) {
			if e.Event.ID == want || e.Event.Text == msg.Text {
				return true
			}
		}
		return false
	})
}

func chatBecomesOneValidEvent(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	msg := chat("conf-msg-1", "hello there, !ping")
	r.h.InjectChat(t, msg)
	wantID := r.expectedID(msg)
	eventually(t, "the chat message's event", func() bool { return len(r.eventsWithID(t, wantID)) > 0 })
	r.injectSentinel(t, "conf-sentinel-1")

	subject := schemas.EventSubject(r.platform, msg.ChannelID, schemas.KindChat)
	var onSubject []storedEvent
	for _, e := range r.events(t) {
		if e.Subject == subject {
			onSubject = append(onSubject, e)
		}
	}
	if len(onSubject) != 2 {
		t.Fatalf("want the message and the sentinel on %s, got %d events there (all events: %s)",
			subject, len(onSubject), describe(r.events(t)))
	}
	got := onSubject[0]
	if !got.DecodeOK {
		t.Fatalf("event on %s is not a JSON Event", subject)
	}
	ev := got.Event
	if err := ev.Validate(); err != nil {
		t.Fatalf("event does not validate: %v", err)
	}
	wantLogin := msg.Login
	if k, ok := r.h.(LoginKeyer); ok {
		wantLogin = k.ExpectedLogin(msg)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"id", ev.ID, wantID},
		{"Nats-Msg-Id", got.MsgID, wantID},
		{"platform", ev.Platform, r.platform},
		{"kind", ev.Kind, schemas.KindChat},
		{"channel id", ev.Channel.ID, msg.ChannelID},
		{"text", ev.Text, msg.Text},
		{"user login", ev.User.Login, wantLogin},
		{"subject", got.Subject, ev.Subject()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("event %s = %v, want %v", c.what, c.got, c.want)
		}
	}
	// Platforms without separate user ids (console) use the login as id.
	if ev.User.ID != msg.UserID && ev.User.ID != msg.Login {
		t.Errorf("event user id = %q, want %q (or the login %q)", ev.User.ID, msg.UserID, msg.Login)
	}
	if ev.ReceivedAt.IsZero() {
		t.Errorf("event has no received_at")
	}
	if ev.User.Bot {
		t.Errorf("event from a chat user is marked as from a bot")
	}
}

func redeliveredMessageIsOneEvent(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	msg := chat("conf-msg-dup", "say it twice")
	r.h.InjectChat(t, msg)
	r.h.InjectChat(t, msg)
	r.injectSentinel(t, "conf-sentinel-dup")
	if got := r.eventsWithID(t, r.expectedID(msg)); len(got) != 1 {
		t.Fatalf("a message the platform delivered twice made %d events, want 1 (all events: %s)",
			len(got), describe(r.events(t)))
	}
	if n := len(r.events(t)); n != 2 {
		t.Fatalf("WB_EVENTS holds %d events, want 2 (the message once and the sentinel): %s", n, describe(r.events(t)))
	}
}

func ownMessagesAreDropped(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	own := chat("conf-msg-own", "I am the bot, talking")
	own.Login, own.UserID, own.FromBot = "waddlebot", "9999", true
	r.h.InjectChat(t, own)
	r.injectSentinel(t, "conf-sentinel-own")
	if n := len(r.events(t)); n != 1 {
		t.Errorf("WB_EVENTS holds %d events, want only the sentinel: %s", n, describe(r.events(t)))
	}
	for _, e := range r.events(t) {
		if e.Event.Text == own.Text || e.Event.ID == r.expectedID(own) {
			t.Fatalf("the bot's own message became an event on %s", e.Subject)
		}
	}
}

// reply builds part n of parts of the replies to invocation inv.
func (r *rig) reply(inv string, n, parts int, text string) schemas.Reply {
	return schemas.Reply{
		Version: schemas.Version, ID: schemas.ReplyID(inv, n), InvocationID: inv,
		EventID: schemas.EventID(r.platform, "conformance-event"), Module: "conformance",
		Target: schemas.Target{Platform: r.platform, ChannelID: channelID, ChannelName: channelID},
		Text:   text, Part: n, Parts: parts, CreatedAt: time.Now().UTC(),
	}
}

func (r *rig) publishReply(t *testing.T, rep schemas.Reply) {
	t.Helper()
	body, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.watch.JS.Publish(ctx, rep.Subject(), body, jetstream.WithMsgID(rep.ID)); err != nil {
		t.Fatalf("publish reply: %v", err)
	}
}

// settled waits until the sender's consumer has nothing pending and nothing
// unacknowledged: after that no further delivery can happen.
func (r *rig) settled(t *testing.T) {
	t.Helper()
	name := streams.SenderConsumer(r.platform)
	eventually(t, "the "+name+" consumer to settle", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := r.watch.JS.Consumer(ctx, schemas.StreamReplies, name)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

func (r *rig) sentTexts() []string {
	var out []string
	for _, s := range r.h.Sent() {
		out = append(out, s.ChannelID+": "+s.Text)
	}
	return out
}

func repliesArriveOnceInOrder(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	first, second := schemas.InvocationID(schemas.NewEventID(), "conformance", "cmd:one"),
		schemas.InvocationID(schemas.NewEventID(), "conformance", "cmd:two")
	replies := []schemas.Reply{
		r.reply(first, 1, 3, "long answer, part one"),
		r.reply(first, 2, 3, "long answer, part two"),
		r.reply(first, 3, 3, "long answer, part three"),
		r.reply(second, 1, 1, "short answer"),
	}
	var want []string
	for _, rep := range replies {
		r.publishReply(t, rep)
		want = append(want, channelID+": "+rep.Text)
	}
	// Publishing again is what a module's retry does; the stream drops it.
	r.publishReply(t, replies[0])
	eventually(t, "four replies at the platform", func() bool { return len(r.h.Sent()) >= len(want) })
	r.settled(t)
	if got := r.sentTexts(); !slices.Equal(got, want) {
		t.Fatalf("platform received\n  %q\nwant\n  %q", got, want)
	}
}

func sendBudgetHolds(t *testing.T, newHarness func(t *testing.T) Harness) {
	const budget = 4
	const window = 1500 * time.Millisecond
	r := start(t, newHarness, budget, window)
	inv := schemas.InvocationID(schemas.NewEventID(), "conformance", "cmd:flood")
	total := budget + 5
	var want []string
	for n := 1; n <= total; n++ {
		rep := r.reply(inv, n, total, fmt.Sprintf("flood %d", n))
		r.publishReply(t, rep)
		want = append(want, channelID+": "+rep.Text)
	}
	eventually(t, "a first reply at the platform", func() bool { return len(r.h.Sent()) > 0 })
	// The first send happened no later than now, so the window that began
	// with it lasts at least until firstSeen+window: until then no more than
	// the budget may have gone out. Stop a little early to stay clear of
	// the boundary.
	firstSeen := time.Now()
	for time.Since(firstSeen) < window-150*time.Millisecond {
		if n := len(r.h.Sent()); n > budget {
			t.Fatalf("%d replies sent within one %s window, budget is %d: %q", n, window, budget, r.sentTexts())
		}
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, "every reply at the platform", func() bool { return len(r.h.Sent()) >= total })
	r.settled(t)
	got := r.sentTexts()
	if len(got) != total {
		t.Fatalf("platform received %d replies, want %d: %q", len(got), total, got)
	}
	// The first budget's worth went out at once, in order; the rest waited
	// for the window and may come back from their deferral in any order.
	if !slices.Equal(got[:budget], want[:budget]) {
		t.Errorf("first %d replies arrived as %q, want %q", budget, got[:budget], want[:budget])
	}
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	wantSorted := slices.Clone(want)
	slices.Sort(wantSorted)
	if !slices.Equal(sorted, wantSorted) {
		t.Errorf("platform received %q, want each of %q once", got, want)
	}
}

func transientSendFailureIsRetried(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	before := r.sendFailures(t)
	r.h.FailNextSends(1)
	inv := schemas.InvocationID(schemas.NewEventID(), "conformance", "cmd:flaky")
	rep := r.reply(inv, 1, 1, "worth the wait")
	r.publishReply(t, rep)
	eventually(t, "the reply at the platform after a failed send", func() bool { return len(r.h.Sent()) > 0 })
	r.settled(t)
	if got := r.sentTexts(); !slices.Equal(got, []string{channelID + ": " + rep.Text}) {
		t.Fatalf("platform received %q, want the reply exactly once", got)
	}
	if r.sendFailures(t) <= before {
		t.Fatalf("no send failure was counted: the failing send was not attempted, or not retried through the consume loop")
	}
	if dl := deadLetters(t, r.watch); len(dl) != 0 {
		t.Fatalf("a transient failure dead-lettered %d messages", len(dl))
	}
}

func undecodableReplyIsDeadLettered(t *testing.T, newHarness func(t *testing.T) Harness) {
	r := start(t, newHarness, roomyBudget, roomyWindow)
	subject := schemas.ReplySubject(r.platform, channelID)
	garbage := []byte(`{"version":1,"id":`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.watch.JS.Publish(ctx, subject, garbage, jetstream.WithMsgID("conformance-garbage")); err != nil {
		t.Fatal(err)
	}
	inv := schemas.InvocationID(schemas.NewEventID(), "conformance", "cmd:after")
	rep := r.reply(inv, 1, 1, "still here")
	r.publishReply(t, rep)
	eventually(t, "the reply after the undecodable one", func() bool { return len(r.h.Sent()) > 0 })
	eventually(t, "a dead letter for the undecodable reply", func() bool { return len(deadLetters(t, r.watch)) > 0 })
	r.settled(t)
	if got := r.sentTexts(); !slices.Equal(got, []string{channelID + ": " + rep.Text}) {
		t.Fatalf("platform received %q, want only the good reply", got)
	}
	dls := deadLetters(t, r.watch)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.Stream != schemas.StreamReplies || dl.Subject != subject || string(dl.Body) != string(garbage) ||
		dl.Consumer != streams.SenderConsumer(r.platform) {
		t.Fatalf("dead letter = stream %s consumer %s subject %s body %q; want %s, %s, %s, %q",
			dl.Stream, dl.Consumer, dl.Subject, dl.Body, schemas.StreamReplies, streams.SenderConsumer(r.platform), subject, garbage)
	}
	if dl.Failures != 0 {
		t.Fatalf("undecodable reply dead-lettered after %d failed attempts; it can never succeed, so at once", dl.Failures)
	}
}

// deadLetters reads wb.dlq.WB_REPLIES.
func deadLetters(t *testing.T, conn *natsx.Conn) []schemas.DeadLetter {
	t.Helper()
	var out []schemas.DeadLetter
	for _, m := range readStream(t, conn, schemas.StreamDLQ) {
		if m.Subject != schemas.DLQSubject(schemas.StreamReplies) {
			continue
		}
		var dl schemas.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatalf("dead letter on %s is not JSON: %v", m.Subject, err)
		}
		out = append(out, dl)
	}
	return out
}

// readStream returns every message a stream holds, oldest first.
func readStream(t *testing.T, conn *natsx.Conn, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	return natstest.Messages(t, conn.JS, name, "")
}

func describe(events []storedEvent) string {
	var b strings.Builder
	for i, e := range events {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s id=%s text=%q", e.Subject, e.Event.ID, e.Event.Text)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// sendFailures reads the consume loop's count of failed sends of this
// platform's sender from the process's metrics.
func (r *rig) sendFailures(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	consumer := streams.SenderConsumer(r.platform)
	for _, f := range families {
		if f.GetName() != "waddlebot_handler_failures_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["stream"] == schemas.StreamReplies && labels["consumer"] == consumer {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, waitLimit, what, cond)
}

// StartParts runs a collector's long-lived parts (its intake, its sender)
// until t ends, then stops them and fails t with any error they returned.
func StartParts(t *testing.T, name string, parts ...func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, len(parts))
	for _, run := range parts {
		go func() { errs <- run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		for range parts {
			if err := <-errs; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}
