package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/waddlebot/waddlebot/internal/browsertest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// TestDevChatPage drives the dev chat page in headless Chromium: pick a user
// and a role, type !ping, send, and see the bot's pong in the transcript.
//
// With WADDLEBOT_UPDATE_SCREENSHOTS=1 it also writes the page, after the
// reply, to docs/screenshots/dev-chat.png.
func TestDevChatPage(t *testing.T) {
	t.Parallel()
	browsertest.Find(t)
	s := newSandbox(t)
	d := s.startDev([]string{"WADDLEBOT_DATABASE_URL=" + storetest.URL(t)}, "--nats-port", strconv.Itoa(freePort(t)))

	ctx, fail := browsertest.Tab(t, 60*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(d.page),
		chromedp.WaitVisible(chromedp.CSS("#send")),
		// Listening before sending keeps the test honest about the page
		// itself, not about a race with the reply stream.
		chromedp.Poll[chromedp.Void](`document.getElementById('status').textContent.startsWith('listening on #demo')`,
			chromedp.WithPollingTimeout(15*time.Second)),
		chromedp.SetValue(chromedp.CSS("#user"), "carol"),
		chromedp.SetValue(chromedp.CSS("#role"), "moderator"),
		chromedp.SendKeys(chromedp.CSS("#text"), "!ping"),
		chromedp.Click(chromedp.CSS("#send")),
	); err != nil {
		fail("open the page and send !ping", err)
	}

	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](
		`[...document.querySelectorAll('#transcript .reply')].some((e) => !e.hidden && e.textContent.trim() === 'pong')`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		transcript, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.getElementById('transcript').innerText`))
		fail("wait for the pong in the transcript (transcript: "+strconv.Quote(transcript)+")", err)
	}
	// The page sent what was picked: its own line shows the user and role.
	said, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#transcript .said')].map((e) => e.dataset.who + ': ' + e.textContent)`))
	if err != nil {
		fail("read the transcript", err)
	}
	if len(said) != 1 || said[0] != "carol (moderator): !ping" {
		t.Errorf("the sent lines are %q, want [\"carol (moderator): !ping\"]", said)
	}
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#text"))); err != nil || v != "" {
		t.Errorf("the message box holds %q after sending (err %v), want it cleared", v, err)
	}

	saveScreenshot(t, ctx, "dev-chat")
}

// saveScreenshot writes the tab's page to docs/screenshots/<name>.png when
// WADDLEBOT_UPDATE_SCREENSHOTS=1 (the README and docs show them). Quality
// 100 makes Chromium encode PNG; anything lower is JPEG.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("WADDLEBOT_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(moduleRoot, "docs", "screenshots", name+".png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}
