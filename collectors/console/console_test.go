package console

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/conformance"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// breakEnv makes TestConformance run a deliberately broken console in a
// child process, to show that the suite catches each breakage.
const breakEnv = "WADDLEBOT_CONFORMANCE_BREAK"

// harness drives the console through the conformance suite. breakage names
// a defect to build in (empty for none).
type harness struct {
	breakage string
	console  *Console

	mu   sync.Mutex
	sent []conformance.SentMessage
}

func (h *harness) Platform() string { return schemas.PlatformConsole }

func (h *harness) Start(t *testing.T, conn *natsx.Conn, budget int, window time.Duration) {
	t.Helper()
	log := logging.Discard()
	h.console = New(Config{Publisher: collectors.NewPublisher(conn.JS, log), Conn: conn, Logger: log})
	h.console.observe = func(r schemas.Reply) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.sent = append(h.sent, conformance.SentMessage{ChannelID: r.Target.ChannelID, Text: r.Text})
		if h.breakage == "double-send" {
			h.sent = append(h.sent, conformance.SentMessage{ChannelID: r.Target.ChannelID, Text: r.Text})
		}
	}
	if h.breakage == "no-budget" {
		budget = 0
	}
	sender, err := collectors.NewSender(collectors.SenderConfig{
		Platform: h.console, Conn: conn, Budget: budget, Window: window,
		Backoff: []time.Duration{20 * time.Millisecond}, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sender.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("sender: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !sender.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("console sender not ready after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) InjectChat(t *testing.T, msg conformance.ChatMessage) {
	t.Helper()
	m := Message{Channel: msg.ChannelID, User: msg.Login, Text: msg.Text, ID: msg.ID, Bot: msg.FromBot}
	switch h.breakage {
	case "random-ids":
		m.ID = ""
	case "keeps-own":
		m.Bot = false
	case "mangles-text":
		m.Text = strings.ToUpper(m.Text)
	}
	if _, err := h.console.Say(context.Background(), m); err != nil && !errors.Is(err, ErrOwnMessage) {
		t.Fatalf("console say: %v", err)
	}
}

func (h *harness) Sent() []conformance.SentMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]conformance.SentMessage(nil), h.sent...)
}

func (h *harness) FailNextSends(n int) {
	if h.breakage == "ignores-failures" {
		return
	}
	h.console.failNext.Add(int32(n))
}

func TestConformance(t *testing.T) {
	breakage := os.Getenv(breakEnv)
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &harness{breakage: breakage} })
}

// TestConformanceCatchesBrokenCollectors runs the suite in child processes
// against consoles with one defect each: the subtest meant to catch it must
// fail.
func TestConformanceCatchesBrokenCollectors(t *testing.T) {
	if os.Getenv(breakEnv) != "" {
		t.Skip("inside a child process")
	}
	if testing.Short() {
		t.Skip("runs the suite in child processes")
	}
	cases := []struct{ breakage, subtest string }{
		{"mangles-text", "ChatBecomesOneValidEvent"},
		{"random-ids", "RedeliveredMessageIsOneEvent"},
		{"keeps-own", "OwnMessagesAreDropped"},
		{"double-send", "RepliesArriveOnceInOrder"},
		{"no-budget", "SendBudgetHolds"},
		{"ignores-failures", "TransientSendFailureIsRetried"},
	}
	for _, c := range cases {
		t.Run(c.breakage, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConformance$/^"+c.subtest+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), breakEnv+"="+c.breakage)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a console that %s:\n%s", c.breakage, out)
			}
			if want := "--- FAIL: TestConformance/" + c.subtest; !strings.Contains(string(out), want) {
				t.Fatalf("want %q in the output:\n%s", want, out)
			}
		})
	}
}

func TestSendReachesOnlyItsChannelsListeners(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	demo, stopDemo := c.Subscribe("demo")
	other, stopOther := c.Subscribe("other")
	defer stopOther()

	r := schemas.Reply{ID: "r1", Target: schemas.Target{Platform: "console", ChannelID: "demo"}, Text: "pong"}
	if err := c.Send(context.Background(), &r); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-demo:
		if got.Text != "pong" {
			t.Fatalf("demo got %q", got.Text)
		}
	case <-time.After(time.Second):
		t.Fatal("demo listener got nothing")
	}
	select {
	case got := <-other:
		t.Fatalf("a listener on another channel got %q", got.Text)
	default:
	}
	stopDemo()
	if _, open := <-demo; open {
		t.Fatal("subscription still open after cancel")
	}
	stopDemo() // twice is harmless
	// Nobody listening on demo now: still no failure.
	if err := c.Send(context.Background(), &r); err != nil {
		t.Fatalf("send without listeners: %v", err)
	}
}

func TestSendFailsOnlyAsOftenAsAsked(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	c.failNext.Add(2)
	r := schemas.Reply{Target: schemas.Target{Platform: "console", ChannelID: "demo"}, Text: "x"}
	var failed int
	for range 4 {
		if err := c.Send(context.Background(), &r); err != nil {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("%d sends failed, want 2", failed)
	}
}

func TestSlowListenerDoesNotBlockSend(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	_, stop := c.Subscribe("demo") // never read
	defer stop()
	r := schemas.Reply{Target: schemas.Target{Platform: "console", ChannelID: "demo"}, Text: "x"}
	done := make(chan struct{})
	go func() {
		for range listenerBuffer + 10 {
			_ = c.Send(context.Background(), &r)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked on a listener that does not read")
	}
}
