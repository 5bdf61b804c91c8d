// Package browsertest starts headless Chromium for tests that drive pages
// (the dev chat page, the portal, overlays). Without a browser the tests
// skip, unless CI is set, where a missing browser is a broken machine.
package browsertest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Find returns a Chromium or Chrome to drive: $CHROME_PATH, then the usual
// names.
func Find(t testing.TB) string {
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

// Tab starts headless Chromium for t and returns a tab that times out after
// timeout, and fail, which ends the test with the browser's own output.
func Tab(t testing.TB, timeout time.Duration) (context.Context, func(step string, err error)) {
	t.Helper()
	browser := Find(t)
	// The profile lives outside t.TempDir: Chromium's helpers may still
	// write into it while the test's directories are removed.
	profile, err := os.MkdirTemp("", "waddlebot-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	out := &output{}
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
		chromedp.CombinedOutput(out),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	return ctx, func(step string, err error) {
		t.Helper()
		t.Fatalf("%s: %v\n--- browser output:\n%s", step, err, out.tail(4000))
	}
}

// output keeps what the browser printed, for failures.
type output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *output) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.b.String()
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
