package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestPageServesTheChat(t *testing.T) {
	srv := httptest.NewServer(New(Config{Logger: logging.Discard()}).Handler())
	defer srv.Close()

	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	page := string(body)
	for _, want := range []string{
		`id="user"`, `id="role"`, `id="channel"`, `value="demo"`, `id="text"`, `id="send"`, `id="transcript"`,
		`addLine('reply'`, "api/say", "api/stream", "WADDLEBOT_CONSOLE_ENABLED",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	for _, role := range Roles {
		if !strings.Contains(page, `<option value="`+role+`"`) {
			t.Errorf("role select lacks %q", role)
		}
	}
	// Nothing may come from elsewhere.
	for _, external := range []string{"http://", "https://", "//cdn", "<script src", `<link rel="stylesheet"`} {
		if strings.Contains(page, external) {
			t.Errorf("page references an external asset: %s", external)
		}
	}
	if res, err := http.Get(srv.URL + "/other"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other = %v, %v; want 404", res.StatusCode, err)
	}
}

func postSay(t *testing.T, url, contentType, body string) (int, map[string]string) {
	t.Helper()
	res, err := http.Post(url+"/api/say", contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("POST /api/say %s answered %d with a body that is not JSON: %v", body, res.StatusCode, err)
	}
	return res.StatusCode, out
}

func TestSayEndpoint(t *testing.T) {
	env := natstest.Start(t, nil)
	c := New(Config{Publisher: collectors.NewPublisher(env.Conn.JS, logging.Discard()), Logger: logging.Discard()})
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	status, out := postSay(t, srv.URL, "application/json",
		`{"channel":"demo","user":"ada","role":"moderator","text":"!quote add hi","id":"click-1"}`)
	if status != http.StatusAccepted || out["event_id"] != schemas.EventID("console", "click-1") {
		t.Fatalf("POST good = %d %v", status, out)
	}
	// The same click again: accepted, and the stream keeps one event.
	if status, _ := postSay(t, srv.URL, "application/json; charset=utf-8",
		`{"channel":"demo","user":"ada","role":"moderator","text":"!quote add hi","id":"click-1"}`); status != http.StatusAccepted {
		t.Fatalf("repeat POST = %d", status)
	}
	msgs := readEvents(t, env)
	if len(msgs) != 1 {
		t.Fatalf("WB_EVENTS holds %d events, want 1", len(msgs))
	}
	ev := msgs[0]
	if ev.ID != out["event_id"] || ev.Channel.ID != "demo" || ev.User.Login != "ada" || ev.Text != "!quote add hi" ||
		!ev.User.HasRole(schemas.RoleModerator) {
		t.Fatalf("stored event %+v", ev)
	}

	bad := []struct {
		name, contentType, body, mention string
		status                           int
	}{
		{"not JSON", "application/json", `{"channel":`, "JSON", http.StatusBadRequest},
		{"bad channel", "application/json", `{"channel":"a b","user":"ada","text":"hi"}`, "channel", http.StatusBadRequest},
		{"bad user", "application/json", `{"channel":"demo","user":"","text":"hi"}`, "user", http.StatusBadRequest},
		{"bad role", "application/json", `{"channel":"demo","user":"ada","role":"king","text":"hi"}`, "role", http.StatusBadRequest},
		{"empty text", "application/json", `{"channel":"demo","user":"ada","text":"  "}`, "text", http.StatusBadRequest},
		{"a form from another site", "text/plain", `{"channel":"demo","user":"ada","text":"hi"}`, "application/json", http.StatusUnsupportedMediaType},
	}
	for _, b := range bad {
		status, out := postSay(t, srv.URL, b.contentType, b.body)
		if status != b.status || !strings.Contains(out["error"], b.mention) {
			t.Errorf("%s: %d %v; want %d with an error about %s", b.name, status, out, b.status, b.mention)
		}
	}
	if n := len(readEvents(t, env)); n != 1 {
		t.Fatalf("bad requests published: WB_EVENTS holds %d events", n)
	}
	if res, err := http.Get(srv.URL + "/api/say"); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/say = %v, %v; want 405", res.StatusCode, err)
	}

	// NATS gone: the page hears that the message was not taken.
	env.Conn.NC.Close()
	status, out = postSay(t, srv.URL, "application/json", `{"channel":"demo","user":"ada","text":"anyone?"}`)
	if status != http.StatusServiceUnavailable || out["error"] == "" {
		t.Fatalf("POST with NATS closed = %d %v; want 503 with an error", status, out)
	}
}

func readEvents(t *testing.T, env *natstest.Env) []schemas.Event {
	t.Helper()
	return natstest.Decode[schemas.Event](t, env.Conn.JS, schemas.StreamEvents, "")
}

// sseReader reads Server-Sent Events: blocks of lines ending in a blank line.
type sseReader struct{ r *bufio.Reader }

func (s sseReader) next(t *testing.T) []string {
	t.Helper()
	var block []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (so far %q)", err, block)
		}
		line = strings.TrimRight(line, "\n")
		if line == "" {
			return block
		}
		block = append(block, line)
	}
}

func openStream(t *testing.T, url, channel string) (sseReader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/stream?channel="+channel, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := sseReader{bufio.NewReader(res.Body)}
	// The greeting comes once the subscription is in place.
	if hello := s.next(t); !strings.Contains(strings.Join(hello, "\n"), ": connected") {
		t.Fatalf("first block %q", hello)
	}
	return s, func() { cancel(); res.Body.Close() }
}

func TestStreamCarriesTheChannelsReplies(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	stream, stop := openStream(t, srv.URL, "demo")
	defer stop()

	other := schemas.Reply{ID: "r-other", Target: schemas.Target{Platform: "console", ChannelID: "elsewhere"}, Text: "not for you"}
	mine := schemas.Reply{Version: 1, ID: "r-demo", EventID: "e-1", Target: schemas.Target{Platform: "console", ChannelID: "demo"},
		Text: "Pong! <b>not html</b>", Part: 1, Parts: 1}
	for _, r := range []*schemas.Reply{&other, &mine} {
		if err := c.Send(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	block := stream.next(t)
	if len(block) != 3 || block[0] != "event: reply" || block[1] != "id: r-demo" || !strings.HasPrefix(block[2], "data: ") {
		t.Fatalf("event block %q", block)
	}
	var got schemas.Reply
	if err := json.Unmarshal([]byte(strings.TrimPrefix(block[2], "data: ")), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != mine.ID || got.Text != mine.Text || got.EventID != mine.EventID || got.Target != mine.Target {
		t.Fatalf("reply %+v, want %+v", got, mine)
	}
}

func TestStreamSendsKeepalives(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	c.keepalive = 20 * time.Millisecond
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	stream, stop := openStream(t, srv.URL, "demo")
	defer stop()
	if block := stream.next(t); len(block) != 1 || block[0] != ": keepalive" {
		t.Fatalf("block %q, want a keepalive comment", block)
	}
}

func TestStreamRejectsBadChannels(t *testing.T) {
	srv := httptest.NewServer(New(Config{Logger: logging.Discard()}).Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/api/stream?channel=a.b")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", res.StatusCode)
	}
}

func TestStreamEndsWithTheClient(t *testing.T) {
	c := New(Config{Logger: logging.Discard()})
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	_, stop := openStream(t, srv.URL, "demo")
	stop()
	// The handler unsubscribes when the client goes.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.hub.mu.Lock()
		n := len(c.hub.subs["demo"])
		c.hub.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions left after the client went", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
