package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// findBrowser returns a Chromium or Chrome to drive: $CHROME_PATH, then the
// usual names. Without one the browser tests skip, unless CI is set, where a
// missing browser is a broken machine and fails.
func findBrowser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROME_PATH=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found (set CHROME_PATH, or apt-get install chromium); CI is set, so this fails instead of skipping")
	}
	t.Skip("no Chromium found (set CHROME_PATH, or apt-get install chromium)")
	return ""
}

// TestDevChatPage drives the dev chat page in headless Chromium: pick a user
// and a role, type !ping, send, and see the bot's pong in the transcript.
//
// With WADDLEBOT_UPDATE_SCREENSHOTS=1 it also writes the page, after the
// reply, to docs/screenshots/dev-chat.png.
func TestDevChatPage(t *testing.T) {
	t.Parallel()
	browser := findBrowser(t)
	s := newSandbox(t)
	d := s.startDev([]string{"WADDLEBOT_DATABASE_URL=" + storetest.URL(t)}, "--nats-port", strconv.Itoa(freePort(t)))

	ctx, fail := newBrowser(t, browser, 60*time.Second)
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

// newBrowser starts headless Chromium for one test and returns a tab that
// times out after timeout, and fail, which ends the test with the browser's
// own output.
func newBrowser(t *testing.T, browser string, timeout time.Duration) (context.Context, func(step string, err error)) {
	t.Helper()
	// The profile lives outside t.TempDir: Chromium's helpers may still
	// write into it while the test's directories are removed.
	profile, err := os.MkdirTemp("", "waddlebot-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	browserOut := &logBuffer{}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 760),
		chromedp.CombinedOutput(browserOut),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx, func(step string, err error) {
		t.Helper()
		t.Fatalf("%s: %v\n--- browser output:\n%s", step, err, tail(browserOut.String(), 4000))
	}
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
