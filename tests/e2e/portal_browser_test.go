package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/collectors/twitch/twitchtest"
	"github.com/waddlebot/waddlebot/internal/browsertest"
)

// TestPortalInBrowser drives the portal of `waddlebot dev` in headless
// Chromium against a fake Twitch: the streamer signs in with Twitch,
// connects their channel, creates a community and attaches the channel,
// disables a module and sees its command stop answering in the channel's
// chat, enables it again, and adds an alias that then answers from chat.
//
// With WADDLEBOT_UPDATE_SCREENSHOTS=1 it writes the pages it visits to
// docs/screenshots/portal-*.png.
func TestPortalInBrowser(t *testing.T) {
	t.Parallel()
	browsertest.Find(t)
	streamer := twitchtest.User{ID: "141981765", Login: "penguinstreams", DisplayName: "PenguinStreams"}
	bot := twitchtest.User{ID: "900902", Login: "waddlebot", DisplayName: "WaddleBot"}
	viewer := twitchtest.User{ID: "5571", Login: "viewer", DisplayName: "Viewer"}
	fake := fakeTwitch(t, streamer, bot, viewer)
	s := newSandbox(t)
	d := s.startDev(twitchEnv(t, fake))
	// The operator connects the bot account (outside the portal).
	twitchConnector(t, d, fake)("/connect/twitch/bot", bot, eventsub.BotScopes())

	ctx, fail := browsertest.Tab(t, 120*time.Second)
	// Where dev's banner sends the browser: the host of the OAuth callbacks.
	base := "http://" + strings.Replace(d.addr, "127.0.0.1", "localhost", 1)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`))
			fail(what+" (page: "+tail(page, 1500)+")\n--- dev:\n"+tail(d.output(), 2000), err)
		}
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			fail("read the location", err)
		}
		return loc
	}

	// Sign in with Twitch: the fake's consent page sends the browser back.
	fake.NextAuthorize(streamer.ID)
	step("open the sign-in page", chromedp.Navigate(base+"/portal/signin"),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/portal/signin/twitch"]`)))
	saveScreenshot(t, ctx, "portal-signin")
	step("sign in with Twitch", chromedp.Click(chromedp.CSS(`a[href="/portal/signin/twitch"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/portal/communities/new"]`)))
	if body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); !strings.Contains(body, streamer.DisplayName) {
		t.Errorf("the portal does not show who signed in: %q", tail(body, 500))
	}

	// Connect the channel, in the same browser.
	fake.NextAuthorize(streamer.ID, eventsub.BroadcasterScopes()...)
	step("connect the Twitch channel", chromedp.Navigate(base+"/connect/twitch"),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.body.innerText.includes(%q)`, streamer.DisplayName),
			chromedp.WithPollingTimeout(20*time.Second)))

	// Create a community.
	step("create a community", chromedp.Navigate(base+"/portal/communities/new"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SetValue(chromedp.CSS(`#name`), "Penguin Crew"),
		chromedp.SetValue(chromedp.CSS(`#prefix`), "!"),
		chromedp.SetValue(chromedp.CSS(`#time_zone`), "Europe/Paris"),
		chromedp.Submit(chromedp.CSS(`#name`)),
		// The new community's page: its own navigation.
		chromedp.WaitReady(chromedp.CSS(`a[href$="/audit"]`)))
	community := location()[strings.LastIndex(location(), "/c/")+3:]
	cbase := base + "/portal/c/" + community
	saveScreenshot(t, ctx, "portal-community")

	// Attach the channel the streamer connected.
	attach := fmt.Sprintf(`form[action$="/channels/attach"] input[name="channel_id"][value=%q]`, streamer.ID)
	step("attach the channel", chromedp.Navigate(cbase+"/channels/attach"),
		chromedp.WaitReady(chromedp.CSS(attach)))
	saveScreenshot(t, ctx, "portal-attach")
	step("press attach", chromedp.Submit(chromedp.CSS(attach)),
		// The channels page, with the channel and its detach button.
		chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`form[action$="/channels/detach"] input[value=%q]`, streamer.ID))))

	eventually(t, 30*time.Second, "the channel's EventSub socket with every subscription", func() (bool, string) {
		for _, sess := range fake.Sessions() {
			if sess.Connected && sess.Subscriptions == len(eventsub.Specs()) {
				return true, ""
			}
		}
		return false, tail(d.output(), 2000)
	})
	n := 0
	// say types text in the channel as the viewer and returns the bot's
	// answer, or "" when none came by the time a !ping typed after it was
	// answered (chat is handled in order enough for that: the router
	// finishes the first before the second's pong is sent).
	say := func(text string) string {
		t.Helper()
		n++
		id, ping := fmt.Sprintf("portal-e2e-%d", n), fmt.Sprintf("portal-e2e-%d-ping", n)
		for _, m := range []struct{ id, text string }{{id, text}, {ping, "!ping"}} {
			fake.Notify(streamer.ID, "channel.chat.message", map[string]any{
				"broadcaster_user_id": streamer.ID, "broadcaster_user_login": streamer.Login, "broadcaster_user_name": streamer.DisplayName,
				"chatter_user_id": viewer.ID, "chatter_user_login": viewer.Login, "chatter_user_name": viewer.DisplayName,
				"message_id": m.id, "message": map[string]any{"text": m.text, "fragments": []any{}},
				"color": "", "badges": []any{}, "message_type": "text",
			})
		}
		answer := ""
		eventually(t, 30*time.Second, "the answer to !ping after "+text, func() (bool, string) {
			pinged := false
			for _, m := range fake.Chat() {
				pinged = pinged || m.ReplyParentID == ping
				if m.ReplyParentID == id {
					answer = m.Text
				}
			}
			return pinged, tail(d.output(), 2000)
		})
		// A moment more for an answer that was in flight beside the pong.
		time.Sleep(300 * time.Millisecond)
		for _, m := range fake.Chat() {
			if m.ReplyParentID == id {
				answer = m.Text
			}
		}
		return answer
	}
	if got := say("!rep"); !strings.HasPrefix(got, "Viewer: 600") {
		t.Fatalf("!rep before disabling: %q", got)
	}

	// Disable reputation in the portal: !rep stops answering.
	toggle := `form[action$="/modules/reputation/enabled"]`
	step("disable reputation", chromedp.Navigate(cbase+"/modules"),
		chromedp.WaitVisible(chromedp.CSS(toggle)))
	saveScreenshot(t, ctx, "portal-modules")
	step("press disable", chromedp.Submit(chromedp.CSS(toggle+` button`)),
		chromedp.WaitReady(chromedp.CSS(toggle+` input[name="enabled"][value="true"]`)))
	if got := say("!rep"); got != "" {
		t.Errorf("!rep answered with reputation disabled: %q", got)
	}
	step("enable reputation", chromedp.Submit(chromedp.CSS(toggle+` button`)),
		chromedp.WaitReady(chromedp.CSS(toggle+` input[name="enabled"][value="false"]`)))
	if got := say("!rep"); !strings.HasPrefix(got, "Viewer: 600") {
		t.Errorf("!rep after enabling again: %q", got)
	}

	// Add an alias in the portal and use it from chat.
	step("add an alias", chromedp.Navigate(cbase+"/aliases"),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SetValue(chromedp.CSS(`#name`), "hello"),
		chromedp.SetValue(chromedp.CSS(`#command`), "!ping"),
		chromedp.Submit(chromedp.CSS(`#name`)),
		chromedp.WaitReady(chromedp.CSS(`form[action$="/aliases/hello/remove"]`)))
	saveScreenshot(t, ctx, "portal-aliases")
	if got := say("!hello"); got != "pong" {
		t.Errorf("!hello after adding the alias: %q", got)
	}

	// The changes are in the community's audit log.
	step("open the audit log", chromedp.Navigate(cbase+"/audit"),
		chromedp.Poll[chromedp.Void](`document.body.innerText.includes("alias.add") && document.body.innerText.includes("module.set")`,
			chromedp.WithPollingTimeout(15*time.Second)))
	saveScreenshot(t, ctx, "portal-audit")
	for _, page := range []string{"commands", "reputation"} {
		step("open "+page, chromedp.Navigate(cbase+"/"+page), chromedp.WaitVisible(chromedp.CSS("main")))
		saveScreenshot(t, ctx, "portal-"+page)
	}
	if code, graceful := d.stop(15 * time.Second); !graceful || code != 0 {
		t.Fatalf("dev exit %d (graceful %v) on SIGTERM\n%s", code, graceful, tail(d.output(), 3000))
	}
}
