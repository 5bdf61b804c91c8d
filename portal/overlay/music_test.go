package overlay

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/youtube"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// request runs `!sr query` through the music module against a fake
// YouTube, as the worker would, and publishes its now-playing item.
func (h *harness) request(query string) {
	h.t.Helper()
	fake := musictest.NewYouTube(h.t, "k",
		musictest.Video{ID: "aaaaaaaaaaa", Title: "First Song", Channel: "One", Duration: "PT3M"},
		musictest.Video{ID: "bbbbbbbbbbb", Title: "Second Song", Channel: "Two", Duration: "PT3M"})
	mod := music.New(music.Config{Store: h.st, YouTube: &youtube.Client{APIURL: fake.URL, Key: "k"}})
	inv := &schemas.Invocation{Version: schemas.Version, ID: uuid.NewString(), Module: music.Name,
		Community: schemas.Community{ID: h.community, Prefix: "!"}, Route: schemas.RouteCommand + "sr", Command: "sr", ArgText: query,
		Event: schemas.Event{Platform: schemas.PlatformConsole, User: schemas.User{ID: "u1", Login: "ada"}}, Deadline: time.Now().Add(time.Minute)}
	var res *schemas.Result
	if err := h.st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		res, err = mod.Handle(context.Background(), inv, tx)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	for _, item := range res.Overlays {
		item.Version, item.ID, item.CommunityID, item.CreatedAt = schemas.Version, uuid.NewString(), h.community, time.Now()
		b, _ := json.Marshal(item)
		if _, err := h.nats.Conn.JS.Publish(context.Background(), schemas.OverlaySubject(h.community, item.Source), b); err != nil {
			h.t.Fatal(err)
		}
	}
}

func postEnded(t *testing.T, base, token, body string) int {
	t.Helper()
	resp, err := http.Post(base+Base+"/music/ended?t="+token, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (h *harness) nowPlaying() []music.NowPlaying {
	items := natstest.Decode[schemas.OverlayItem](h.t, h.nats.Conn.JS, schemas.StreamOverlay, schemas.OverlaySubject(h.community, schemas.OverlayNowPlaying))
	out := make([]music.NowPlaying, 0, len(items))
	for _, it := range items {
		var np music.NowPlaying
		if err := json.Unmarshal(it.Data, &np); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, np)
	}
	return out
}

func TestTrackEndedEndpoint(t *testing.T) {
	h := newHarness(t)
	_, base, _ := h.serve(nil, time.Minute)
	h.request("first")
	h.request("second")
	first := h.nowPlaying()
	if len(first) != 1 || first[0].TrackID != "aaaaaaaaaaa" {
		t.Fatalf("now playing %+v", first)
	}
	body := `{"entry": ` + itoa(first[0].Entry) + `}`
	for _, c := range []struct {
		token, body string
		want        int
	}{
		{"", body, http.StatusUnauthorized},
		{"wrong", body, http.StatusForbidden},
		{h.tokens["alerts"], body, http.StatusForbidden},
		{h.tokens["nowplaying"], `not json`, http.StatusBadRequest},
		{h.tokens["nowplaying"], `{"entry": 0}`, http.StatusBadRequest},
	} {
		if got := postEnded(t, base, c.token, c.body); got != c.want {
			t.Errorf("token %q body %s: %d, want %d", c.token, c.body, got, c.want)
		}
	}
	if n := len(h.nowPlaying()); n != 1 {
		t.Fatalf("refused reports published %d items", n)
	}
	if got := postEnded(t, base, h.tokens["nowplaying"], body); got != http.StatusNoContent {
		t.Fatalf("ended: %d", got)
	}
	// Reported twice (a page reloaded mid-report): the queue moves once.
	if got := postEnded(t, base, h.tokens["nowplaying"], body); got != http.StatusNoContent {
		t.Fatalf("ended again: %d", got)
	}
	nps := h.nowPlaying()
	if len(nps) != 2 || nps[1].TrackID != "bbbbbbbbbbb" || nps[1].Player != music.YouTube {
		t.Fatalf("after the end %+v", nps)
	}
	if got := postEnded(t, base, h.tokens["nowplaying"], `{"entry": `+itoa(nps[1].Entry)+`}`); got != http.StatusNoContent {
		t.Fatal(got)
	}
	if nps = h.nowPlaying(); len(nps) != 3 || !nps[2].Stop {
		t.Fatalf("after the last song %+v", nps)
	}
}

// standIn is a player adapter that needs no internet: it records what it
// was told and lets the test end a song as the IFrame player would.
const standIn = `window.waddlebotPlayer = function (box, events) {
  window.standIn = { events: events, loaded: [], state: "" };
  return {
    load: function (id) { window.standIn.loaded.push(id); window.standIn.state = "playing"; },
    pause: function () { window.standIn.state = "paused"; },
    play: function () { window.standIn.state = "playing"; },
    stop: function () { window.standIn.state = "stopped"; }
  };
}; true`

// TestBrowserPlaysTheQueue opens the now-playing page in headless
// Chromium with the stand-in player: the first request plays, the player
// reports its end, and the page plays the next one.
func TestBrowserPlaysTheQueue(t *testing.T) {
	ctx := browser(t)
	h := newHarness(t)
	srv, err := New(Config{Store: h.st, Conn: h.nats.Connect(t), Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(rctx) }()
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { stop(); <-done; hs.Close() })

	if err := chromedp.Do(ctx, chromedp.Navigate(hs.URL+Base+"/nowplaying?t="+h.tokens["nowplaying"])); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](standIn)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, wait, "the page's socket", func() bool { return srv.Listeners() == 1 })
	waitJS(t, ctx, `Object.keys(sessionStorage).length > 0`)
	h.request("first")
	h.request("second")
	waitJS(t, ctx, `window.standIn && window.standIn.loaded.join() === "aaaaaaaaaaa"`)
	text, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(".nowplaying")))
	if err != nil {
		t.Fatal(err)
	}
	if text != "First Song — One (requested by ada)" {
		t.Errorf("card shows %q", text)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.standIn.events.ended(); true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `window.standIn.loaded.join() === "aaaaaaaaaaa,bbbbbbbbbbb"`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.standIn.events.ended(); true`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `window.standIn.state === "stopped"`)
}
