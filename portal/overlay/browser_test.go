package overlay

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/alerts"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/browsertest"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

func browser(t *testing.T) context.Context {
	t.Helper()
	ctx, _ := browsertest.Tab(t, 90*time.Second)
	return ctx
}

// TestBrowserShowsAlertsAndEscapesChat opens the alerts and ticker
// browser sources in headless Chromium, sends a follow through the real
// pipeline (router and alerts module), and checks the alert is in the
// DOM; then a moderator's !ticker full of markup shows as text, adds no
// element, and runs nothing.
func TestBrowserShowsAlertsAndEscapesChat(t *testing.T) {
	ctx := browser(t)
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(*store.Store) actions.Module { return alerts.New() }},
	})
	if got := p.SayText("mod", "moderator", "!ticker hello"); got != "Ticker set." {
		t.Fatalf("!ticker answered %q", got)
	}
	c := p.Community(pipelinetest.DefaultChannel)
	bg := context.Background()
	alertsToken, err := p.Store.RotateOverlayToken(bg, "test", c.ID, "alerts", time.Now(), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	tickerToken, err := p.Store.RotateOverlayToken(bg, "test", c.ID, "ticker", time.Now(), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: p.Store, Conn: p.Env.Connect(t), Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(rctx) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { stop(); <-done; hs.Close() })

	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+Base+"/alerts?t="+alertsToken)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, pipelinetest.Wait, "the page's socket", func() bool { return srv.Listeners() == 1 })
	// The hello is sent just after the socket listens: wait for the page
	// to have stored where it starts, or the follow could predate it.
	waitJS(t, ctx, `Number(sessionStorage.getItem(Object.keys(sessionStorage)[0]) || "0") > 0`)

	const evil = `<img src=x onerror="window.pwned=1">`
	ev := followEvent(evil)
	if err := collectors.NewPublisher(p.Client.JS, logging.Discard()).Publish(bg, ev); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(".alert"))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(".alert")))
	if err != nil {
		t.Fatal(err)
	}
	if text != evil+" just followed!" {
		t.Errorf("alert shows %q", text)
	}
	checkInert(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+Base+"/ticker?t="+tickerToken)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, pipelinetest.Wait, "the ticker page's socket", func() bool { return srv.Listeners() == 1 })
	waitJS(t, ctx, `Object.keys(sessionStorage).some(function (k) { return k.indexOf(":ticker:") > 0 && Number(sessionStorage.getItem(k)) > 0; })`)
	payload := `<script>window.pwned=2</script><img src=x onerror="window.pwned=3"><b>bold</b>`
	if got := p.SayText("mod", "moderator", "!ticker "+payload); got != "Ticker set." {
		t.Fatalf("!ticker answered %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.WaitReady(chromedp.CSS(".ticker"))); err != nil {
		t.Fatal(err)
	}
	ticker, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(".ticker")))
	if err != nil {
		t.Fatal(err)
	}
	if ticker != payload {
		t.Errorf("ticker shows %q, want the text as typed", ticker)
	}
	checkInert(t, ctx)
	// !ticker clear takes it away.
	if got := p.SayText("mod", "moderator", "!ticker clear"); got != "Ticker cleared." {
		t.Fatalf("!ticker clear answered %q", got)
	}
	waitJS(t, ctx, `document.querySelector(".ticker") === null`)
}

func followEvent(name string) *schemas.Event {
	id := schemas.NewEventID()
	now := time.Now().UTC()
	return &schemas.Event{Version: schemas.Version, ID: id, PlatformEventID: id, Platform: schemas.PlatformConsole,
		Kind: schemas.KindFollow, Channel: schemas.Channel{ID: pipelinetest.DefaultChannel, Name: pipelinetest.DefaultChannel},
		User: schemas.User{ID: "follower", Login: "follower", DisplayName: name}, OccurredAt: now, ReceivedAt: now}
}

// checkInert fails if the page grew elements from chat text or ran any of
// it: the payloads would set window.pwned.
func checkInert(t *testing.T, ctx context.Context) {
	t.Helper()
	type inert struct {
		Pwned   bool `json:"pwned"`
		Images  int  `json:"images"`
		Scripts int  `json:"scripts"`
		Bolds   int  `json:"bolds"`
	}
	// Give a payload's onerror (fired when the image fails) time to run.
	time.Sleep(300 * time.Millisecond)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[inert](`({pwned: window.pwned !== undefined,
		images: document.querySelectorAll("img").length,
		scripts: document.querySelectorAll("script").length,
		bolds: document.querySelectorAll("b").length})`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pwned || res.Images != 0 || res.Scripts != 1 || res.Bolds != 0 {
		t.Errorf("chat text became markup: %+v", res)
	}
}

func waitJS(t *testing.T, ctx context.Context, cond string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(pipelinetest.Wait))); err != nil {
		t.Fatalf("waiting for %s: %v", strings.TrimSpace(cond), err)
	}
}
