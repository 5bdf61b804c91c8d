package slack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors/conformance"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// The workspace of the collector tests: installed by hand with a static
// bot token, events over the Events API (requests are handled one at a
// time, so one channel's messages are published in the order posted).
const (
	colTeam    = "T0CONF"
	colBotUser = "U0WADDLEBOT"
	colToken   = "xoxb-conformance"
	colSecret  = "conformance-signing-secret"
)

type colRig struct {
	fake *sndFake
	web  *httptest.Server

	mu  sync.Mutex
	ts  map[string]string // platform message id → Slack ts
	seq int
}

func startColRig(t *testing.T, conn *natsx.Conn, st *store.Store, budget int, window time.Duration) *colRig {
	t.Helper()
	fake := sndNewFake(t)
	fake.identity(colToken, sndIdentity{TeamID: colTeam, TeamName: "Conformance", UserID: colBotUser})
	mux := http.NewServeMux()
	web := httptest.NewServer(mux)
	t.Cleanup(web.Close)
	c, err := New(t.Context(), Config{
		BotToken: colToken, SigningSecret: colSecret, APIURL: fake.apiURL(), Transport: TransportEvents,
		PublicURL: web.URL, ResponseURLHost: "127.0.0.1", Budget: budget, Window: window, Backoff: []time.Duration{20 * time.Millisecond},
		Conn: conn, Store: st, Holder: "conformance", Logger: logging.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Mount(mux)
	conformance.StartParts(t, "slack collector", c.RunIntake, c.Sender().Run)
	natstest.Eventually(t, 20*time.Second, "the sender ready", c.Sender().Ready)
	return &colRig{fake: fake, web: web, ts: map[string]string{}}
}

// tsOf gives each platform message id its own Slack timestamp (the same
// one when a message is delivered again).
func (r *colRig) tsOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ts, ok := r.ts[id]; ok {
		return ts
	}
	r.seq++
	ts := fmt.Sprintf("1700000000.%06d", r.seq)
	r.ts[id] = ts
	return ts
}

// post delivers a message event as Slack's Events API does.
func (r *colRig) post(t *testing.T, channel, user, text, id string) {
	t.Helper()
	ts := r.tsOf(id)
	inner := fmt.Sprintf(`{"type":"message","channel":%q,"user":%q,"text":%q,"ts":%q,"event_ts":%q,"channel_type":"channel"}`,
		channel, user, text, ts, ts)
	body := fmt.Sprintf(`{"token":"legacy","team_id":%q,"api_app_id":"A0APP","type":"event_callback","event_id":%q,"event_time":1700000000,"event":%s}`,
		colTeam, "Ev"+id, inner)
	req := hookRequest(EventsPath, body, colSecret, time.Now())
	req.RequestURI = ""
	u := r.web.URL + EventsPath
	parsed, _ := req.URL.Parse(u)
	req.URL = parsed
	req.Host = parsed.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Events API answered %d", resp.StatusCode)
	}
}

type colHarness struct{ r *colRig }

func (h *colHarness) Platform() string { return schemas.PlatformSlack }

func (h *colHarness) Start(t *testing.T, conn *natsx.Conn, budget int, window time.Duration) {
	h.r = startColRig(t, conn, storetest.New(t), budget, window)
}

func (h *colHarness) InjectChat(t *testing.T, msg conformance.ChatMessage) {
	user := msg.UserID
	if msg.FromBot {
		user = colBotUser
	}
	h.r.post(t, msg.ChannelID, user, msg.Text, msg.ID)
}

func (h *colHarness) EventKey(msg conformance.ChatMessage) string {
	return colTeam + ":" + msg.ChannelID + ":" + h.r.tsOf(msg.ID)
}

// ExpectedLogin: Slack users have no login to type; they are addressed by
// id (<@U…>), which is what the collector puts in Login.
func (h *colHarness) ExpectedLogin(msg conformance.ChatMessage) string { return msg.UserID }

func (h *colHarness) Sent() []conformance.SentMessage {
	var out []conformance.SentMessage
	for _, c := range h.r.fake.seen("chat.postMessage") {
		if c.Refused {
			continue
		}
		out = append(out, conformance.SentMessage{ChannelID: c.Form.Get("channel"), Text: c.Form.Get("text")})
	}
	return out
}

// FailNextSends makes chat.postMessage answer 503 n times, then ok.
func (h *colHarness) FailNextSends(n int) {
	answers := make([]sndAnswer, 0, n+1)
	for range n {
		answers = append(answers, sndAnswer{Status: http.StatusServiceUnavailable, Body: "unavailable"})
	}
	answers = append(answers, sndAnswer{Status: http.StatusOK, Body: `{"ok":true,"channel":"c0nf_chan-1","ts":"1700000001.000100"}`})
	h.r.fake.answer("chat.postMessage", answers...)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Harness { return &colHarness{} })
}

// TestPingThroughSlack: !ping in a channel → router and core → pong posted
// with the workspace's token.
func TestPingThroughSlack(t *testing.T) {
	t.Parallel()
	p := pipelinetest.Start(t, pipelinetest.Options{})
	r := startColRig(t, p.Env.Connect(t), p.Store, 1, time.Second)
	r.post(t, "C0GENERAL", "U0ALICE", "!ping", "ping-1")
	var calls []sndCall
	natstest.Eventually(t, 20*time.Second, "pong posted", func() bool {
		calls = r.fake.seen("chat.postMessage")
		return len(calls) > 0
	})
	c := calls[0]
	if c.Form.Get("text") != "pong" || c.Form.Get("channel") != "C0GENERAL" || c.Token != colToken {
		t.Fatalf("posted %+v; want pong in C0GENERAL with the workspace token", c)
	}
}

// TestSlashCommandThroughSlack: /waddlebot ping over HTTP is acknowledged
// and answered through its response URL.
func TestSlashCommandThroughSlack(t *testing.T) {
	t.Parallel()
	p := pipelinetest.Start(t, pipelinetest.Options{})
	r := startColRig(t, p.Env.Connect(t), p.Store, 1, time.Second)
	answers := make(chan map[string]any, 4)
	responder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(req.Body).Decode(&body)
		answers <- body
	}))
	t.Cleanup(responder.Close)
	form := url.Values{"token": {"legacy"}, "team_id": {colTeam}, "team_domain": {"conf"}, "channel_id": {"C0GENERAL"},
		"channel_name": {"general"}, "user_id": {"U0ALICE"}, "user_name": {"alice"}, "command": {"/waddlebot"},
		"text": {"ping"}, "api_app_id": {"A0APP"}, "response_url": {responder.URL + "/commands/T0CONF/1/abc"},
		"trigger_id": {"13345224609.738474920.8088930838d88f008e0"}}
	req := hookRequest(CommandsPath, form.Encode(), colSecret, time.Now())
	req.RequestURI = ""
	req.URL, _ = url.Parse(r.web.URL + CommandsPath)
	req.Host = req.URL.Host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("slash command answered %d", resp.StatusCode)
	}
	select {
	case body := <-answers:
		if body["text"] != "pong" {
			t.Fatalf("response URL got %v; want pong", body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no answer at the response URL within 20 s")
	}
	if n := len(r.fake.seen("chat.postMessage")); n != 0 {
		t.Fatalf("%d chat.postMessage calls besides the response URL", n)
	}
}
