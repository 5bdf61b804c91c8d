package slack

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// sockFake is slacktest's server with what the client sends back over the
// WebSocket collected (slacktest hands every frame to an unbuffered feed
// that must be drained, or its reader stops).
type sockFake struct {
	srv  *slacktest.Server
	mu   sync.Mutex
	acks []string // envelope ids acknowledged
	// payloads are the acknowledgements' payloads, by envelope id.
	payloads map[string]string
}

func newSockFake(t *testing.T) *sockFake {
	t.Helper()
	f := &sockFake{srv: slacktest.NewTestServer(), payloads: map[string]string{}}
	f.srv.Start()
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		f.srv.Stop()
	})
	go func() {
		for {
			select {
			case <-done:
				return
			case frame := <-f.srv.SeenFeed:
				var ack struct {
					EnvelopeID string          `json:"envelope_id"`
					Payload    json.RawMessage `json:"payload"`
				}
				if json.Unmarshal([]byte(frame), &ack) == nil && ack.EnvelopeID != "" {
					f.mu.Lock()
					f.acks = append(f.acks, ack.EnvelopeID)
					f.payloads[ack.EnvelopeID] = string(ack.Payload)
					f.mu.Unlock()
				}
			}
		}
	}()
	return f
}

func (f *sockFake) acked(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.acks, id)
}

// ackPayload is the payload the envelope was acknowledged with; "" when
// it was not acknowledged or was acknowledged without one.
func (f *sockFake) ackPayload(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.payloads[id]
}

// push sends a Socket Mode envelope of kind carrying payload.
func (f *sockFake) push(envelopeID, kind, payload string) {
	f.srv.SendToWebsocket(`{"envelope_id":"` + envelopeID + `","type":"` + kind + `","payload":` + payload +
		`,"accepts_response_payload":false,"retry_attempt":0}`)
}

func TestSocketMode(t *testing.T) {
	rig := newIntakeRig(t, schemas.Manifest{Name: "core", Version: "1.0.0",
		Commands: []schemas.CommandSpec{{Name: "ping", Permission: "everyone"}}})
	fake := newSockFake(t)
	sock, err := NewSocket(SocketConfig{AppToken: "xapp-1-test", APIURL: fake.srv.GetAPIURL(), Intake: rig.intake,
		Leases: intakeLeases(t, rig.env), Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- sock.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	fake.srv.SendToWebsocket(`{"type":"hello","num_connections":1,"connection_info":{"app_id":"A0APP"}}`)

	// A post that mentions the bot comes as message and app_mention: both
	// acknowledged, one event, in its thread.
	const ts, thread = "1700000100.000100", "1700000000.000001"
	fake.push("env-msg", "events_api", callbackBody("EvM1",
		messageInner(intakeHuman, "<@U0BOT> !ping", ts, `,"thread_ts":"`+thread+`"`)))
	fake.push("env-mention", "events_api", callbackBody("EvM2",
		mentionInner(intakeHuman, "<@U0BOT> !ping", ts, `,"thread_ts":"`+thread+`"`)))
	// The bot's own answer: acknowledged, dropped.
	fake.push("env-own", "events_api", callbackBody("EvM3",
		messageInner(intakeBotUser, "pong", "1700000101.000100", `,"bot_id":"B0BOT"`)))
	// An event slack-go cannot parse is still acknowledged.
	fake.push("env-unknown", "events_api", callbackBody("EvM4", `{"type":"no_such_event"}`))
	fake.push("env-slash", "slash_commands", `{"team_id":"T0TEAM","channel_id":"C0CHAN","user_id":"U0ALICE",`+
		`"user_name":"alice","command":"/waddlebot","text":"ping","response_url":"https://hooks.slack.test/r/1",`+
		`"trigger_id":"trig-sock-1"}`)
	for _, id := range []string{"env-msg", "env-mention", "env-own", "env-unknown", "env-slash"} {
		natstest.Eventually(t, 10*time.Second, "envelope "+id+" acknowledged", func() bool { return fake.acked(id) })
	}
	natstest.Eventually(t, 10*time.Second, "the chat and the command published", func() bool {
		return len(rig.pub.published()) >= 2
	})
	// Pushed last: slacktest delivers frames in no fixed order, and an
	// uninstall makes the bot's mentions unknown.
	fake.push("env-uninstall", "events_api", callbackBody("EvM5", `{"type":"app_uninstalled"}`))
	natstest.Eventually(t, 10*time.Second, "envelope env-uninstall acknowledged", func() bool { return fake.acked("env-uninstall") })
	natstest.Eventually(t, 10*time.Second, "workspace disconnected", func() bool {
		return slices.Equal(rig.workspaces.disconnected(), []string{intakeTeam + ":app_uninstalled"})
	})

	got := rig.pub.published()
	if len(got) != 2 {
		t.Fatalf("published %d events, want the chat and the command: %+v", len(got), got)
	}
	// slacktest delivers each pushed frame from a goroutine of its own, so
	// the events may come in either order.
	chat, cmd := got[0], got[1]
	if chat.Kind == schemas.KindCommand {
		chat, cmd = cmd, chat
	}
	if chat.Kind != schemas.KindChat || chat.Text != "!ping" || chat.ThreadID != thread ||
		chat.ID != schemas.EventID("slack", intakeTeam+":"+intakeChannel+":"+ts) {
		t.Fatalf("chat event %+v", chat)
	}
	if cmd.Kind != schemas.KindCommand || cmd.Text != "ping" || !strings.EqualFold(cmd.Channel.ServerID, intakeTeam) {
		t.Fatalf("command event %+v", cmd)
	}
	in, ok, err := rig.interactions.Get(t.Context(), "slack", cmd.ID)
	if err != nil || !ok || in.ResponseURL != "https://hooks.slack.test/r/1" || in.Ephemeral {
		t.Fatalf("interaction %+v %v %v", in, ok, err)
	}
}

func TestNewSocketNeeds(t *testing.T) {
	in, _, _ := newIntakeOnly()
	if _, err := NewSocket(SocketConfig{Intake: in}); err == nil {
		t.Fatal("NewSocket accepted a config without an app token")
	}
	if _, err := NewSocket(SocketConfig{AppToken: "xapp-1", Intake: in}); err == nil {
		t.Fatal("NewSocket accepted a config without leases")
	}
}

// sockStart runs a Socket over fake for rig until the test ends.
func sockStart(t *testing.T, rig *intakeRig, fake *sockFake) {
	t.Helper()
	sock, err := NewSocket(SocketConfig{AppToken: "xapp-1-test", APIURL: fake.srv.GetAPIURL(), Intake: rig.intake,
		Leases: intakeLeases(t, rig.env), Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan error, 1)
	go func() { stopped <- sock.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	fake.srv.SendToWebsocket(`{"type":"hello","num_connections":1,"connection_info":{"app_id":"A0APP"}}`)
}

func TestSocketAcknowledgesOnlyWhatIsPublished(t *testing.T) {
	rig := newIntakeRig(t)
	fake := newSockFake(t)
	sockStart(t, rig, fake)

	rig.pub.failNext(1)
	const ts = "1700000200.000100"
	fake.push("env-first", "events_api", callbackBody("EvA1", messageInner(intakeHuman, "!ping", ts, "")))
	natstest.Eventually(t, 10*time.Second, "the failed publish", func() bool { return rig.pub.attempted() >= 1 })
	// Slack redelivers what was not acknowledged, in a new envelope. One
	// connection's envelopes are handled in order, so the first one's fate
	// is decided (and any acknowledgement sent) before the redelivery's.
	fake.srv.SendToWebsocket(`{"envelope_id":"env-retry","type":"events_api","payload":` +
		callbackBody("EvA1", messageInner(intakeHuman, "!ping", ts, "")) +
		`,"accepts_response_payload":false,"retry_attempt":1,"retry_reason":"timeout"}`)
	natstest.Eventually(t, 10*time.Second, "the redelivery acknowledged", func() bool { return fake.acked("env-retry") })
	if fake.acked("env-first") {
		t.Fatal("the envelope whose publish failed was acknowledged: Slack would never redeliver it")
	}
	if got := rig.pub.published(); len(got) != 1 || got[0].Text != "!ping" {
		t.Fatalf("published %+v, want the redelivered event once", got)
	}
}

func TestSocketSlashCommandApologizesWhenNotPublished(t *testing.T) {
	rig := newIntakeRig(t)
	fake := newSockFake(t)
	sockStart(t, rig, fake)
	rig.pub.failNext(1)
	fake.push("env-slash-fail", "slash_commands", `{"team_id":"T0TEAM","channel_id":"C0CHAN","user_id":"U0ALICE",`+
		`"command":"/waddlebot","text":"ping","response_url":"https://hooks.slack.test/r/2","trigger_id":"trig-sock-2"}`)
	natstest.Eventually(t, 10*time.Second, "the slash command acknowledged", func() bool {
		return fake.ackPayload("env-slash-fail") != ""
	})
	if p := fake.ackPayload("env-slash-fail"); !strings.Contains(p, `"ephemeral"`) || !strings.Contains(p, "try again") {
		t.Fatalf("acknowledgement payload %s, want an ephemeral apology", p)
	}
}
