package collectors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// fakePlatform records what it accepted; outcome, when set, decides each
// attempt (nil accepts).
type fakePlatform struct {
	mu       sync.Mutex
	sent     []schemas.Reply
	attempts int
	outcome  func(attempt int, r *schemas.Reply) error
}

func (f *fakePlatform) Name() string { return schemas.PlatformConsole }

func (f *fakePlatform) Send(_ context.Context, r *schemas.Reply) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.outcome != nil {
		if err := f.outcome(f.attempts, r); err != nil {
			return err
		}
	}
	f.sent = append(f.sent, *r)
	return nil
}

func (f *fakePlatform) texts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.sent {
		out = append(out, r.Text)
	}
	return out
}

func (f *fakePlatform) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

func reply(channel string, n int, text string) schemas.Reply {
	inv := schemas.InvocationID(schemas.EventID("console", "sender-test-"+channel), "test", "cmd:test")
	return schemas.Reply{
		Version: schemas.Version, ID: schemas.ReplyID(inv, n), InvocationID: inv,
		Target: schemas.Target{Platform: schemas.PlatformConsole, ChannelID: channel},
		Text:   text, Part: 1, Parts: 1, CreatedAt: time.Now().UTC(),
	}
}

func publishRaw(t *testing.T, conn *natsx.Conn, subject string, body []byte, id string) {
	t.Helper()
	if _, err := conn.JS.Publish(context.Background(), subject, body, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

func publishReply(t *testing.T, conn *natsx.Conn, r schemas.Reply) {
	t.Helper()
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, conn, r.Subject(), body, r.ID)
}

// runSender runs a sender until the test ends and waits until it is ready.
func runSender(t *testing.T, cfg collectors.SenderConfig) *collectors.Sender {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.Backoff == nil {
		cfg.Backoff = []time.Duration{20 * time.Millisecond}
	}
	s, err := collectors.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sender run: %v", err)
		}
	})
	eventually(t, "the sender to be ready", s.Ready)
	return s
}

func TestNewSenderChecksItsConfig(t *testing.T) {
	conn := &natsx.Conn{}
	env := natstest.Start(t, nil)
	cases := map[string]collectors.SenderConfig{
		"no platform":        {Conn: env.Conn},
		"no connection":      {Platform: &fakePlatform{}},
		"no jetstream":       {Platform: &fakePlatform{}, Conn: conn},
		"negative budget":    {Platform: &fakePlatform{}, Conn: env.Conn, Budget: -1},
		"budget, no window":  {Platform: &fakePlatform{}, Conn: env.Conn, Budget: 20},
		"unknown platform":   {Platform: namedPlatform("myspace"), Conn: env.Conn},
		"platform not lower": {Platform: namedPlatform("Console"), Conn: env.Conn},
	}
	for name, cfg := range cases {
		if _, err := collectors.NewSender(cfg); err == nil {
			t.Errorf("%s: NewSender accepted it", name)
		}
	}
	if _, err := collectors.NewSender(collectors.SenderConfig{Platform: &fakePlatform{}, Conn: env.Conn}); err != nil {
		t.Errorf("a sender without a budget: %v", err)
	}
}

type namedPlatform string

func (n namedPlatform) Name() string                               { return string(n) }
func (n namedPlatform) Send(context.Context, *schemas.Reply) error { return nil }

func TestSenderDeadLettersRepliesItCannotSend(t *testing.T) {
	env := natstest.Start(t, nil)
	fake := &fakePlatform{}
	runSender(t, collectors.SenderConfig{Platform: fake, Conn: env.Conn})

	wrongPlatform := reply("room", 1, "for twitch")
	wrongPlatform.Target.Platform = schemas.PlatformTwitch
	body, _ := json.Marshal(wrongPlatform)
	publishRaw(t, env.Conn, schemas.ReplySubject("console", "room"), body, "wrong-platform")

	wrongChannel := reply("elsewhere", 1, "smuggled")
	body, _ = json.Marshal(wrongChannel)
	publishRaw(t, env.Conn, schemas.ReplySubject("console", "room"), body, "wrong-channel")

	invalid := reply("room", 1, "")
	body, _ = json.Marshal(invalid)
	publishRaw(t, env.Conn, schemas.ReplySubject("console", "room"), body, "invalid")

	refused := reply("room", 2, "refused for good")
	fake.outcome = func(_ int, r *schemas.Reply) error {
		if r.Text == "refused for good" {
			return consume.Permanent(errors.New("403 banned from channel"))
		}
		return nil
	}
	publishReply(t, env.Conn, refused)
	good := reply("room", 3, "fine")
	publishReply(t, env.Conn, good)

	eventually(t, "four dead letters", func() bool { return len(deadLetters(t, env.Conn)) >= 4 })
	eventually(t, "the good reply", func() bool { return len(fake.texts()) == 1 })
	if got := fake.texts(); !slices.Equal(got, []string{"fine"}) {
		t.Fatalf("platform got %q", got)
	}
	reasons := map[string]bool{}
	for _, dl := range deadLetters(t, env.Conn) {
		if dl.Failures != 0 {
			t.Errorf("dead letter %q after %d failures; want at once", dl.Reason, dl.Failures)
		}
		switch {
		case strings.Contains(dl.Reason, "reached the console sender"):
			reasons["platform"] = true
		case strings.Contains(dl.Reason, `targets channel "elsewhere"`):
			reasons["channel"] = true
		case strings.Contains(dl.Reason, "reply message is empty"):
			reasons["invalid"] = true
		case strings.Contains(dl.Reason, "banned"):
			reasons["refused"] = true
		}
	}
	if len(reasons) != 4 {
		t.Fatalf("dead-letter reasons seen: %v; want platform, channel, invalid and refused", reasons)
	}
	if n := fake.attemptCount(); n != 2 {
		t.Errorf("platform saw %d attempts, want 2 (a permanent refusal is not retried)", n)
	}
}

func TestSenderRetriesAfterDeferralWithoutCountingAFailure(t *testing.T) {
	env := natstest.Start(t, nil)
	fake := &fakePlatform{outcome: func(attempt int, _ *schemas.Reply) error {
		if attempt <= 2 {
			return consume.Defer(50*time.Millisecond, "429 Too Many Requests")
		}
		return nil
	}}
	labels := map[string]string{"stream": schemas.StreamReplies, "consumer": "console-sender"}
	before := metricValue(t, "waddlebot_handler_failures_total", labels)
	runSender(t, collectors.SenderConfig{Platform: fake, Conn: env.Conn, MaxFailures: 1})
	publishReply(t, env.Conn, reply("room", 1, "patience"))
	eventually(t, "the reply after two 429s", func() bool { return len(fake.texts()) == 1 })
	if n := fake.attemptCount(); n != 3 {
		t.Errorf("attempts %d, want 3", n)
	}
	if after := metricValue(t, "waddlebot_handler_failures_total", labels); after != before {
		t.Errorf("deferrals counted %v handler failures", after-before)
	}
	if dl := deadLetters(t, env.Conn); len(dl) != 0 {
		t.Errorf("deferral dead-lettered with MaxFailures 1: %+v", dl)
	}
}

func TestSenderDeadLettersAfterMaxFailures(t *testing.T) {
	env := natstest.Start(t, nil)
	fake := &fakePlatform{outcome: func(int, *schemas.Reply) error { return errors.New("502 bad gateway") }}
	runSender(t, collectors.SenderConfig{Platform: fake, Conn: env.Conn, MaxFailures: 3})
	publishReply(t, env.Conn, reply("room", 1, "never"))
	eventually(t, "a dead letter", func() bool { return len(deadLetters(t, env.Conn)) == 1 })
	dl := deadLetters(t, env.Conn)[0]
	if dl.Failures != 3 || !strings.Contains(dl.Reason, "502 bad gateway") {
		t.Fatalf("dead letter after %d failures: %q", dl.Failures, dl.Reason)
	}
	if n := fake.attemptCount(); n != 3 {
		t.Fatalf("attempts %d, want 3", n)
	}
}

// TestSenderCountsPossibleDuplicateSends plays a sender that got past the
// budget, sent, and died before its ack: the reply id is already in the
// window and the message comes again.
func TestSenderCountsPossibleDuplicateSends(t *testing.T) {
	env := natstest.Start(t, nil)
	ctx := context.Background()
	dupLabels := map[string]string{"platform": "console"}
	before := metricValue(t, "waddlebot_possible_duplicate_sends_total", dupLabels)

	crashed := reply("room", 1, "sent, then the sender died")
	windowsKV, err := env.Conn.JS.KeyValue(ctx, streams.BucketWindows)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := coord.NewWindows(windowsKV).Allow(ctx, collectors.BudgetKey("console", "room"), crashed.ID, 10, time.Minute); err != nil || !d.Allowed {
		t.Fatalf("seed the window: %+v %v", d, err)
	}
	publishReply(t, env.Conn, crashed)
	// The dead sender's delivery: taken from the shared consumer and never acked.
	cons, err := streams.EnsureConsumer(ctx, env.Conn.JS, schemas.StreamReplies, streams.SenderConsumerConfig("console", 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		_ = m.Nak() // as AckWait would, only sooner
	}

	var failedOnce []string // guarded by fake.mu
	fake := &fakePlatform{outcome: func(_ int, r *schemas.Reply) error {
		if r.Text == "flaky" && !slices.Contains(failedOnce, r.ID) {
			failedOnce = append(failedOnce, r.ID)
			return errors.New("503")
		}
		return nil
	}}
	runSender(t, collectors.SenderConfig{Platform: fake, Conn: env.Conn, Budget: 10, Window: time.Minute})
	eventually(t, "the redelivered reply", func() bool { return len(fake.texts()) == 1 })
	if got := metricValue(t, "waddlebot_possible_duplicate_sends_total", dupLabels) - before; got != 1 {
		t.Fatalf("possible duplicate sends grew by %v, want 1", got)
	}

	// A retry after a send this sender saw fail is no possible duplicate,
	// and neither is a first delivery.
	publishReply(t, env.Conn, reply("room", 2, "flaky"))
	publishReply(t, env.Conn, reply("room", 3, "plain"))
	eventually(t, "the flaky and the plain reply", func() bool { return len(fake.texts()) == 3 })
	if got := metricValue(t, "waddlebot_possible_duplicate_sends_total", dupLabels) - before; got != 1 {
		t.Fatalf("possible duplicate sends grew by %v, want still 1", got)
	}
}

// TestSendBudgetIsSharedByReplicas runs two senders on one durable consumer:
// together they must stay within the per-channel budget.
func TestSendBudgetIsSharedByReplicas(t *testing.T) {
	env := natstest.Start(t, nil)
	const budget = 3
	const window = 1200 * time.Millisecond
	var mu sync.Mutex
	var sends []string
	record := func(replica string) *fakePlatform {
		return &fakePlatform{outcome: func(_ int, r *schemas.Reply) error {
			mu.Lock()
			sends = append(sends, replica+":"+r.Text)
			mu.Unlock()
			return nil
		}}
	}
	runSender(t, collectors.SenderConfig{Platform: record("a"), Conn: env.Conn, Budget: budget, Window: window})
	runSender(t, collectors.SenderConfig{Platform: record("b"), Conn: env.Conn, Budget: budget, Window: window})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(sends) }
	const total = budget + 4
	for n := 1; n <= total; n++ {
		publishReply(t, env.Conn, reply("busy", n, fmt.Sprintf("m%d", n)))
	}
	eventually(t, "a first send", func() bool { return count() > 0 })
	first := time.Now()
	for time.Since(first) < window-150*time.Millisecond {
		if n := count(); n > budget {
			t.Fatalf("%d sends within one window across replicas, budget %d", n, budget)
		}
		time.Sleep(10 * time.Millisecond)
	}
	eventually(t, "every reply", func() bool { return count() == total })
	// A quiet moment to catch a late duplicate.
	time.Sleep(200 * time.Millisecond)
	if n := count(); n != total {
		t.Fatalf("%d sends, want %d", n, total)
	}
}

func TestSenderStopsWhenCancelled(t *testing.T) {
	env := natstest.Start(t, nil)
	fake := &fakePlatform{}
	s, err := collectors.NewSender(collectors.SenderConfig{Platform: fake, Conn: env.Conn, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Fatal("ready before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	eventually(t, "ready", s.Ready)
	publishReply(t, env.Conn, reply("room", 1, "before the stop"))
	eventually(t, "the reply", func() bool { return len(fake.texts()) == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if s.Ready() {
		t.Fatal("still ready after Run returned")
	}
}
