package music_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/youtube"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// TestSongRequestsThroughThePipeline chats through the console, the router
// and the module's worker: a request plays, its now-playing item reaches
// WB_OVERLAY, and permissions hold end to end.
func TestSongRequestsThroughThePipeline(t *testing.T) {
	fake := musictest.NewYouTube(t, "key", videos...)
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return music.New(music.Config{Store: st, YouTube: &youtube.Client{APIURL: fake.URL, Key: "key"}})
		}},
	})
	c := p.Community(pipelinetest.DefaultChannel)
	// Song requests are off until a community turns them on.
	p.Must(p.Store.SetModule(context.Background(), "test", c.ID, music.Name, true, json.RawMessage(`{"max_per_user": 2}`)))
	p.Must(p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))
	p.Must(p.Client.NC.Flush())
	if got := p.SayText("ada", "", "!sr penguin"); got != "Now playing Penguin Song — Waddle Band." {
		t.Fatalf("!sr answered %q", got)
	}
	if got := p.SayText("bob", "", "!sr https://www.youtube.com/watch?v=bbbbbbbbbbb"); got != "Queued Iceberg Blues — Floe at #1." {
		t.Fatalf("!sr answered %q", got)
	}
	if got := p.SayText("cy", "", "!queue"); !strings.Contains(got, "1. Iceberg Blues — Floe (bob)") {
		t.Fatalf("!queue answered %q", got)
	}
	if got := p.SayText("cy", "", "!skip"); !strings.Contains(got, "Only moderators") {
		t.Fatalf("!skip answered %q", got)
	}
	if got := p.SayText("mod", "moderator", "!skip"); !strings.Contains(got, "Now playing Iceberg Blues") {
		t.Fatalf("!skip answered %q", got)
	}
	var items []schemas.OverlayItem
	natstest.Eventually(t, pipelinetest.Wait, "two now-playing items on WB_OVERLAY", func() bool {
		items = natstest.Decode[schemas.OverlayItem](t, p.Client.JS, schemas.StreamOverlay, schemas.OverlaySubject(c.ID, schemas.OverlayNowPlaying))
		return len(items) >= 2
	})
	var np music.NowPlaying
	if err := json.Unmarshal(items[1].Data, &np); err != nil || np.TrackID != "bbbbbbbbbbb" || items[1].Text != "Iceberg Blues — Floe (requested by bob)" {
		t.Fatalf("items %+v (%v)", items, err)
	}
	if n := p.Count(`SELECT count(*) FROM music_queue WHERE state = 'skipped'`); n != 1 {
		t.Fatalf("%d skipped", n)
	}
}
