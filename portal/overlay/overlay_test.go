package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

const wait = 20 * time.Second

type harness struct {
	t         *testing.T
	nats      *natstest.Env
	st        *store.Store
	clk       *clock.Fake
	community string
	tokens    map[string]string // source: token
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, nats: natstest.Start(t, nil), st: storetest.New(t),
		clk: clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), tokens: map[string]string{}}
	c, err := h.st.CreateCommunity(context.Background(), "test", store.NewCommunity{Name: "Overlays", Prefix: "!", TimeZone: "UTC", Locale: "en"})
	if err != nil {
		t.Fatal(err)
	}
	h.community = c.ID
	for _, s := range store.OverlaySourceNames {
		h.tokens[s] = h.rotate(s, 5*time.Minute)
	}
	return h
}

func (h *harness) rotate(source string, grace time.Duration) string {
	h.t.Helper()
	tok, err := h.st.RotateOverlayToken(context.Background(), "test", h.community, source, h.clk.Now(), grace, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// serve runs an overlay server on ln (a fresh port when nil) until the
// returned stop is called or the test ends.
func (h *harness) serve(ln net.Listener, ping time.Duration) (*Server, string, func()) {
	h.t.Helper()
	srv, err := New(Config{Store: h.st, Conn: h.nats.Connect(h.t), Clock: h.clk, PingInterval: ping, Logger: logging.Discard()})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx) }()
	hs := httptest.NewUnstartedServer(srv)
	if ln != nil {
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Start()
	natstest.Eventually(h.t, wait, "the overlay hub", srv.Ready)
	var once bool
	stop := func() {
		if once {
			return
		}
		once = true
		cancel()
		<-done
		hs.CloseClientConnections()
		hs.Close()
	}
	h.t.Cleanup(stop)
	return srv, hs.URL, stop
}

// publish puts an overlay item on WB_OVERLAY as the runtime does and
// returns its stream sequence.
func (h *harness) publish(source, text string) uint64 {
	h.t.Helper()
	item := schemas.OverlayItem{Version: schemas.Version, ID: uuid.NewString(), CommunityID: h.community, Source: source, Text: text, CreatedAt: time.Now()}
	b, err := json.Marshal(item)
	if err != nil {
		h.t.Fatal(err)
	}
	ack, err := h.nats.Conn.JS.Publish(context.Background(), schemas.OverlaySubject(h.community, source), b)
	if err != nil {
		h.t.Fatal(err)
	}
	return ack.Sequence
}

type received struct {
	Type string              `json:"type"`
	Seq  uint64              `json:"seq"`
	Item schemas.OverlayItem `json:"item"`
	Look store.OverlayLook   `json:"look"`
}

func wsURL(base, token string, after uint64) string {
	u := "ws" + strings.TrimPrefix(base, "http") + Base + "/ws?t=" + token
	if after > 0 {
		u += "&after=" + strconv.FormatUint(after, 10)
	}
	return u
}

func dial(t *testing.T, base, token string, after uint64) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL(base, token, after), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// next reads the next frame that is not a ping.
func next(t *testing.T, c *websocket.Conn) received {
	t.Helper()
	for {
		r, err := tryNext(c, wait)
		if err != nil {
			t.Fatal(err)
		}
		if r.Type != "ping" {
			return r
		}
	}
}

func tryNext(c *websocket.Conn, d time.Duration) (received, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return received{}, err
	}
	var r received
	if err := json.Unmarshal(b, &r); err != nil {
		return received{}, err
	}
	return r, nil
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokens(t *testing.T) {
	h := newHarness(t)
	_, base, _ := h.serve(nil, 0)
	old := h.tokens["ticker"]
	fresh := h.rotate("ticker", 5*time.Minute)
	cases := []struct {
		name, path string
		advance    time.Duration
		want       int
	}{
		{"no token", "/ticker", 0, http.StatusUnauthorized},
		{"wrong token", "/ticker?t=nope", 0, http.StatusForbidden},
		{"another source's token", "/alerts?t=" + h.tokens["ticker"], 0, http.StatusForbidden},
		{"unknown source", "/billboard?t=" + fresh, 0, http.StatusNotFound},
		{"current token", "/ticker?t=" + fresh, 0, http.StatusOK},
		{"rotated-out token within the grace", "/ticker?t=" + old, 4 * time.Minute, http.StatusOK},
		{"socket with the old token within the grace", "/ws?t=" + old, 0, http.StatusUpgradeRequired},
		{"rotated-out token after the grace", "/ticker?t=" + old, 2 * time.Minute, http.StatusForbidden},
		{"socket with the old token after the grace", "/ws?t=" + old, 0, http.StatusForbidden},
		{"socket with no token", "/ws", 0, http.StatusUnauthorized},
		{"current token after the grace", "/ticker?t=" + fresh, 0, http.StatusOK},
	}
	for _, c := range cases {
		h.clk.Advance(c.advance)
		// A plain GET of /ws is refused as "not a WebSocket" only once the
		// token passed.
		if got := status(t, base+Base+c.path); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}

func TestPageHeadersAndLook(t *testing.T) {
	h := newHarness(t)
	if err := h.st.SetOverlayLook(context.Background(), "test", h.community, "alerts",
		store.OverlayLook{Theme: "dark", FontSize: 48, Width: 1280, Height: 300}, nil); err != nil {
		t.Fatal(err)
	}
	_, base, _ := h.serve(nil, 0)
	resp, err := http.Get(base + Base + "/alerts?t=" + h.tokens["alerts"])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q must allow only the page's own script files", csp)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("Referrer-Policy %q: the token is in the URL", resp.Header.Get("Referrer-Policy"))
	}
	for _, want := range []string{`class="theme-dark source-alerts"`, `data-font-size="48"`, `data-width="1280"`, `data-height="300"`, `<script src="/overlay/static/overlay.js"></script>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
		}
	}
	if strings.Count(page, "<script") != 1 {
		t.Errorf("the page has inline script:\n%s", page)
	}
	js, err := staticFS.ReadFile("static/overlay.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(string(js), banned) {
			t.Errorf("overlay.js uses %s: chat text must only ever be set as text", banned)
		}
	}
}

func TestSocketDeliversAndResumes(t *testing.T) {
	h := newHarness(t)
	srv, base, _ := h.serve(nil, 0)
	before := h.publish(schemas.OverlayTicker, "before the page opened")

	c := dial(t, base, h.tokens["ticker"], 0)
	hello := next(t, c)
	if hello.Type != "hello" || hello.Seq != before-1 {
		t.Fatalf("hello %+v: a fresh ticker starts at its current text (%d)", hello, before)
	}
	if cur := next(t, c); cur.Seq != before || cur.Item.Text != "before the page opened" {
		t.Fatalf("a fresh ticker got %+v, want its current text", cur)
	}
	natstest.Eventually(t, wait, "the socket to listen", func() bool { return srv.Listeners() == 1 })
	h.publish(schemas.OverlayAlert, "another source")
	first := h.publish(schemas.OverlayTicker, "one")
	got := next(t, c)
	if got.Type != "item" || got.Seq != first || got.Item.Text != "one" {
		t.Fatalf("got %+v, want item one at %d", got, first)
	}
	c.Close(websocket.StatusNormalClosure, "")
	natstest.Eventually(t, wait, "the socket to go", func() bool { return srv.Listeners() == 0 })

	// Two items while the page was away: shown once each on resume, and
	// the one it already showed is not shown again.
	second := h.publish(schemas.OverlayTicker, "two")
	third := h.publish(schemas.OverlayTicker, "three")
	c = dial(t, base, h.tokens["ticker"], first)
	if hi := next(t, c); hi.Type != "hello" || hi.Seq != first {
		t.Fatalf("hello %+v, want resume from %d", hi, first)
	}
	natstest.Eventually(t, wait, "the socket to listen", func() bool { return srv.Listeners() == 1 })
	fourth := h.publish(schemas.OverlayTicker, "four")
	var seqs []uint64
	var texts []string
	for range 3 {
		r := next(t, c)
		seqs, texts = append(seqs, r.Seq), append(texts, r.Item.Text)
	}
	if want := []uint64{second, third, fourth}; !equal(seqs, want) || strings.Join(texts, ",") != "two,three,four" {
		t.Fatalf("after resume got %v %v, want %v two,three,four", seqs, texts, want)
	}
	if r, err := tryNext(c, 300*time.Millisecond); err == nil && r.Type != "ping" {
		t.Fatalf("a duplicate or stray frame: %+v", r)
	}
}

func TestFreshAlertsPageReplaysNothing(t *testing.T) {
	h := newHarness(t)
	_, base, _ := h.serve(nil, 0)
	old := h.publish(schemas.OverlayAlert, "an hour-old follow")
	c := dial(t, base, h.tokens["alerts"], 0)
	if hello := next(t, c); hello.Type != "hello" || hello.Seq < old {
		t.Fatalf("hello %+v: a fresh alerts page starts after what happened before it (%d)", hello, old)
	}
	fresh := h.publish(schemas.OverlayAlert, "new")
	if got := next(t, c); got.Seq != fresh {
		t.Fatalf("got %+v, want only the new alert %d", got, fresh)
	}
}

// TestResumePastTheStreamEnd: a page that remembers a sequence from a
// stream since recreated starts afresh instead of dropping everything up
// to that number.
func TestResumePastTheStreamEnd(t *testing.T) {
	h := newHarness(t)
	_, base, _ := h.serve(nil, 0)
	now := h.publish(schemas.OverlayGeneral, "x")
	c := dial(t, base, h.tokens["general"], now+1000)
	if hello := next(t, c); hello.Seq != now {
		t.Fatalf("hello %+v, want a fresh start at %d", hello, now)
	}
	fresh := h.publish(schemas.OverlayGeneral, "y")
	if got := next(t, c); got.Seq != fresh || got.Item.Text != "y" {
		t.Fatalf("got %+v", got)
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRestartRecovers stops the server under an open socket, publishes
// while it is down, starts another on the same address, and checks a
// client that reconnects as the page does (resuming after its last
// sequence) gets what it missed exactly once.
func TestRestartRecovers(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, base, stop := h.serve(ln, 0)
	cl := &reconnecting{t: t, base: base, token: h.tokens["alerts"]}
	cl.connect()
	one := h.publish(schemas.OverlayAlert, "one")
	if r := cl.next(); r.Item.Text != "one" || r.Seq != one {
		t.Fatalf("got %+v", r)
	}
	stop()
	missed := h.publish(schemas.OverlayAlert, "while down")
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h.serve(ln2, 0)
	if r := cl.next(); r.Item.Text != "while down" || r.Seq != missed {
		t.Fatalf("after the restart got %+v, want the missed item at %d", r, missed)
	}
	after := h.publish(schemas.OverlayAlert, "after")
	if r := cl.next(); r.Item.Text != "after" || r.Seq != after {
		t.Fatalf("got %+v, want the next item at %d", r, after)
	}
	if cl.dials < 2 {
		t.Errorf("%d dials: the client never reconnected", cl.dials)
	}
}

// reconnecting is a Go client that behaves as overlay.js: it keeps the
// last sequence shown and redials with it, backing off, when the socket
// drops.
type reconnecting struct {
	t           *testing.T
	base, token string
	c           *websocket.Conn
	last        uint64
	dials       int
}

func (r *reconnecting) connect() {
	r.t.Helper()
	backoff := 20 * time.Millisecond
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, _, err := websocket.Dial(ctx, wsURL(r.base, r.token, r.last), nil)
		cancel()
		if err == nil {
			r.t.Cleanup(func() { c.CloseNow() })
			// The first frame is always the hello, with where the server
			// starts from; a server shutting down may close instead.
			if hello, err := tryNext(c, wait); err == nil && hello.Type == "hello" {
				r.dials++
				r.c = c
				r.last = hello.Seq
				return
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no reconnection: %v", err)
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

// next is the next item, reconnecting as needed.
func (r *reconnecting) next() received {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		got, err := tryNext(r.c, wait)
		if err != nil {
			r.connect()
			continue
		}
		switch got.Type {
		case "hello":
			r.last = got.Seq
		case "item":
			if got.Seq <= r.last {
				r.t.Fatalf("item %d shown twice (last %d)", got.Seq, r.last)
			}
			r.last = got.Seq
			return got
		}
	}
	r.t.Fatal("no item")
	return received{}
}

func TestRotatedOutSocketIsClosed(t *testing.T) {
	h := newHarness(t)
	_, base, _ := h.serve(nil, 50*time.Millisecond)
	c := dial(t, base, h.tokens["general"], 0)
	next(t, c) // hello
	h.rotate("general", time.Minute)
	// Within the grace the socket stays: pings come.
	if r, err := tryNext(c, wait); err != nil || r.Type != "ping" {
		t.Fatalf("within the grace: %+v %v", r, err)
	}
	h.clk.Advance(2 * time.Minute)
	for {
		_, err := tryNext(c, wait)
		if err == nil {
			continue
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want a policy violation", err)
		}
		break
	}
}

func TestStoreLook(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	bad := []store.OverlayLook{
		{Theme: "neon", FontSize: 32, Width: 800, Height: 200},
		{Theme: "dark", FontSize: 7, Width: 800, Height: 200},
		{Theme: "dark", FontSize: 32, Width: 99999, Height: 200},
		{Theme: "dark", FontSize: 32, Width: 800, Height: 10},
	}
	for _, l := range bad {
		if err := h.st.SetOverlayLook(ctx, "test", h.community, "ticker", l, nil); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%+v: %v, want refused", l, err)
		}
	}
	good := store.OverlayLook{Theme: "light", FontSize: 20, Width: 640, Height: 100}
	if err := h.st.SetOverlayLook(ctx, "alice", h.community, "ticker", good, map[string]any{"ip": "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	srcs, err := h.st.OverlaySources(ctx, h.community)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 4 || srcs[1].Source != "ticker" || srcs[1].Look != good || !srcs[1].HasToken || srcs[0].Look != store.DefaultOverlayLook() {
		t.Fatalf("sources %+v", srcs)
	}
	log, err := h.st.AuditLog(ctx, h.community, 50)
	if err != nil {
		t.Fatal(err)
	}
	var look, rotate int
	for _, e := range log {
		switch e.Action {
		case "overlay.look":
			look++
			if e.Actor != "alice" || e.Details["ip"] != "192.0.2.1" || e.Details["before"] == nil || e.Details["after"] == nil {
				t.Errorf("look audit %+v lacks who, where, before or after", e)
			}
		case "overlay.rotate":
			rotate++
		}
	}
	if look != 1 || rotate != 4 {
		t.Errorf("%d look and %d rotate audit entries, want 1 and 4", look, rotate)
	}
}
