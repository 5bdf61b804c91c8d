package music_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/spotify"
	"github.com/waddlebot/waddlebot/actions/music/youtube"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

var videos = []musictest.Video{
	{ID: "aaaaaaaaaaa", Title: "Penguin Song", Channel: "Waddle Band", Duration: "PT3M10S"},
	{ID: "bbbbbbbbbbb", Title: "Iceberg Blues", Channel: "Floe", Duration: "PT4M"},
	{ID: "ccccccccccc", Title: "Krill Party", Channel: "Deep Sea", Duration: "PT2M30S"},
	{ID: "ddddddddddd", Title: "Very Long Mix", Channel: "DJ Ice", Duration: "PT2H"},
	{ID: "eeeeeeeeeee", Title: "Label Locked", Channel: "Big Label", Duration: "PT3M", NotEmbeddable: true},
	{ID: "fffffffffff", Title: "Explicit Words", Channel: "Rude", Duration: "PT3M"},
	{ID: "ggggggggggg", Title: "Fourth Tune", Channel: "Floe", Duration: "PT3M"},
}

// harness runs the module's handler as the worker does: one transaction per
// invocation, committed when the handler succeeds.
type harness struct {
	t        *testing.T
	st       *store.Store
	mod      actions.Module
	cid      string
	settings string
}

func newHarness(t *testing.T, cfg music.Config, settings string) *harness {
	t.Helper()
	st := storetest.New(t)
	c, err := st.ResolveChannel(context.Background(), store.Channel{Platform: schemas.PlatformConsole, ChannelID: "music-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	return &harness{t: t, st: st, mod: music.New(cfg), cid: c.ID, settings: settings}
}

func (h *harness) run(user, role, command, args string) *schemas.Result {
	h.t.Helper()
	u := schemas.User{ID: "id-" + user, Login: user, DisplayName: user}
	if role != "" {
		u.Roles = []schemas.Role{schemas.Role(role)}
	}
	inv := &schemas.Invocation{Version: schemas.Version, ID: uuid.NewString(), Module: music.Name,
		Community: schemas.Community{ID: h.cid, Prefix: "!"}, Settings: json.RawMessage(h.settings),
		Route: schemas.RouteCommand + command, Command: command, ArgText: args, Args: strings.Fields(args),
		Event:    schemas.Event{Platform: schemas.PlatformConsole, Kind: schemas.KindCommand, User: u},
		Deadline: time.Now().Add(time.Minute)}
	var res *schemas.Result
	err := h.st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		res, err = h.mod.Handle(context.Background(), inv, tx)
		return err
	})
	if err != nil {
		h.t.Fatalf("!%s %s: %v", command, args, err)
	}
	return res
}

// say runs a command and returns its one reply.
func (h *harness) say(user, role, command, args string) string {
	h.t.Helper()
	res := h.run(user, role, command, args)
	if len(res.Replies) != 1 {
		h.t.Fatalf("!%s %s: replies %+v", command, args, res.Replies)
	}
	return res.Replies[0].Text
}

func expect(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("got %q, want it to contain %q", got, want)
	}
}

func nowPlaying(t *testing.T, res *schemas.Result) music.NowPlaying {
	t.Helper()
	if len(res.Overlays) != 1 || res.Overlays[0].Source != schemas.OverlayNowPlaying {
		t.Fatalf("overlays %+v, want one now-playing item", res.Overlays)
	}
	var np music.NowPlaying
	if err := json.Unmarshal(res.Overlays[0].Data, &np); err != nil {
		t.Fatal(err)
	}
	return np
}

func ytHarness(t *testing.T, settings string) (*harness, *musictest.YouTube) {
	fake := musictest.NewYouTube(t, "key", videos...)
	return newHarness(t, music.Config{YouTube: &youtube.Client{APIURL: fake.URL, Key: "key"}}, settings), fake
}

func TestYouTubeSearchQueueNowPlayingEndNext(t *testing.T) {
	h, _ := ytHarness(t, "")
	res := h.run("ada", "", "sr", "penguin")
	expect(t, res.Replies[0].Text, "Now playing Penguin Song — Waddle Band.")
	first := nowPlaying(t, res)
	if first.Player != music.YouTube || first.TrackID != "aaaaaaaaaaa" || first.Requester != "ada" || first.Entry == 0 {
		t.Fatalf("now playing %+v", first)
	}
	expect(t, h.say("bob", "", "sr", "https://youtu.be/bbbbbbbbbbb"), "Queued Iceberg Blues — Floe at #1.")
	expect(t, h.say("cy", "", "sr", "krill"), "at #2")
	expect(t, h.say("dee", "", "queue", ""), "Now: Penguin Song — Waddle Band. 1. Iceberg Blues — Floe (bob) 2. Krill Party — Deep Sea (cy)")
	expect(t, h.say("dee", "", "np", ""), "Now playing: Penguin Song — Waddle Band, requested by ada.")

	// The overlay reports the end of the song playing: the next starts.
	np, err := music.TrackEnded(context.Background(), h.st, h.cid, first.Entry)
	if err != nil {
		t.Fatal(err)
	}
	if np == nil || np.TrackID != "bbbbbbbbbbb" {
		t.Fatalf("after the end: %+v", np)
	}
	// A second report of the same end (a page reloaded) skips nothing.
	if again, err := music.TrackEnded(context.Background(), h.st, h.cid, first.Entry); err != nil || again != nil {
		t.Fatalf("a repeated end gave %+v, %v", again, err)
	}
	expect(t, h.say("dee", "", "np", ""), "Iceberg Blues")
	np, _ = music.TrackEnded(context.Background(), h.st, h.cid, np.Entry)
	np, _ = music.TrackEnded(context.Background(), h.st, h.cid, np.Entry)
	if np == nil || !np.Stop {
		t.Fatalf("after the last song: %+v", np)
	}
	expect(t, h.say("dee", "", "np", ""), "Nothing is playing.")
	// The next request plays at once.
	expect(t, h.say("ada", "", "sr", "iceberg"), "Now playing Iceberg Blues")
}

func TestLimits(t *testing.T) {
	h, fake := ytHarness(t, `{"max_per_user": 2, "max_duration_seconds": 600, "blocked_terms": ["explicit"], "max_queue": 3}`)
	expect(t, h.say("ada", "", "sr", "penguin"), "Now playing")
	expect(t, h.say("ada", "", "sr", "iceberg"), "#1")
	expect(t, h.say("ada", "", "sr", "krill"), "#2")
	expect(t, h.say("ada", "", "sr", "fourth"), "You already have 2 song(s) waiting")
	// A moderator is not limited per user, but the queue is.
	expect(t, h.say("mod", "moderator", "sr", "fourth"), "#3")
	expect(t, h.say("mod", "moderator", "sr", "long"), "The queue is full (3 songs)")
	h.say("mod", "moderator", "remove", "3")

	expect(t, h.say("bob", "", "sr", "very long"), "Very Long Mix — DJ Ice is 2:00:00 long; the most allowed here is 10:00.")
	calls := fake.Calls()
	expect(t, h.say("bob", "", "sr", "something EXPLICIT"), `requests containing "explicit" are not allowed`)
	if fake.Calls() != calls {
		t.Fatal("a blocked search still cost quota")
	}
	expect(t, h.say("bob", "", "sr", "https://youtu.be/fffffffffff"), `songs matching "explicit" are not allowed`)
	expect(t, h.say("bob", "", "sr", "https://youtu.be/eeeeeeeeeee"), "can't be played outside YouTube")
	expect(t, h.say("bob", "", "sr", "https://youtu.be/zzzzzzzzzzz"), "couldn't find that song")
	expect(t, h.say("bob", "", "sr", "iceberg"), "already in the queue")
	expect(t, h.say("bob", "", "sr", "spotify:track:4uLU6hMCjMI75M1A2tKUQC"), "This channel plays songs from YouTube")
	expect(t, h.say("bob", "", "sr", "https://example.com/x"), "not a song I can play")
	expect(t, h.say("bob", "", "sr", ""), "Usage: !sr")
	if n := count(t, h, `state = 'queued'`); n != 2 {
		t.Fatalf("%d queued, want 2: refused requests queue nothing", n)
	}
}

func count(t *testing.T, h *harness, where string) int {
	t.Helper()
	var n int
	if err := h.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM music_queue WHERE community_id = $1 AND `+where, h.cid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestModeratorCommands(t *testing.T) {
	h, _ := ytHarness(t, "")
	h.say("ada", "", "sr", "penguin")
	h.say("bob", "", "sr", "iceberg")
	h.say("cy", "", "sr", "krill")

	expect(t, h.say("bob", "", "skip", ""), "Only moderators, or whoever requested it")
	expect(t, h.say("bob", "", "remove", "2"), "Only moderators, or whoever requested it")
	expect(t, h.say("bob", "", "remove", "9"), "There is no song #9")
	expect(t, h.say("bob", "", "remove", "x"), "Usage: !remove <n>")
	expect(t, h.say("bob", "", "sr", "pause"), "Only moderators pause")
	// The requester removes their own song.
	expect(t, h.say("bob", "", "remove", "1"), "Removed #1, Iceberg Blues — Floe.")
	// The requester skips their own song; the next plays.
	res := h.run("ada", "", "skip", "")
	expect(t, res.Replies[0].Text, "Skipped Penguin Song — Waddle Band. Now playing Krill Party — Deep Sea.")
	if np := nowPlaying(t, res); np.TrackID != "ccccccccccc" {
		t.Fatalf("after the skip %+v", np)
	}
	res = h.run("mod", "moderator", "sr", "pause")
	expect(t, res.Replies[0].Text, "Music paused.")
	if np := nowPlaying(t, res); !np.Paused || np.TrackID != "ccccccccccc" {
		t.Fatalf("paused card %+v", np)
	}
	expect(t, h.say("mod", "moderator", "sr", "pause"), "already paused")
	expect(t, h.say("dee", "", "np", ""), "Paused: Now playing: Krill Party")
	res = h.run("mod", "broadcaster", "sr", "resume")
	if np := nowPlaying(t, res); np.Paused {
		t.Fatalf("resumed card %+v", np)
	}
	// A moderator skips anyone's song; the queue runs dry.
	res = h.run("mod", "moderator", "skip", "")
	if np := nowPlaying(t, res); !np.Stop {
		t.Fatalf("empty queue card %+v", np)
	}
	if n := count(t, h, `state = 'skipped'`); n != 2 {
		t.Fatalf("%d skipped", n)
	}
}

func TestYouTubeQuotaExceeded(t *testing.T) {
	h, fake := ytHarness(t, "")
	fake.Fail(http.StatusForbidden, "quotaExceeded")
	expect(t, h.say("ada", "", "sr", "penguin"), "out of quota")
	if n := count(t, h, `true`); n != 0 {
		t.Fatal("a failed search queued a song")
	}
}

func TestYouTubeNotConfigured(t *testing.T) {
	h := newHarness(t, music.Config{YouTube: &youtube.Client{}}, "")
	expect(t, h.say("ada", "", "sr", "penguin"), "not set up")
	h = newHarness(t, music.Config{}, `{"provider":"spotify"}`)
	expect(t, h.say("ada", "", "sr", "penguin"), "not set up")
}

var tracks = []musictest.Track{
	{ID: "1111111111111111111111", Name: "Waddle Waltz", Artist: "The Penguins", Duration: 3 * time.Minute},
	{ID: "2222222222222222222222", Name: "Snow Dance", Artist: "Flurry", Duration: 4 * time.Minute},
	{ID: "3333333333333333333333", Name: "Long Night", Artist: "Aurora", Duration: 20 * time.Minute},
}

// memTokens keeps tokens in memory (the store's encrypted tokens are tested
// in package spotify).
type memTokens struct{ m map[string]spotify.Token }

func (m *memTokens) Load(_ context.Context, cid string) (spotify.Token, error) {
	t, ok := m.m[cid]
	if !ok {
		return spotify.Token{}, music.ErrNotConnected
	}
	return t, nil
}

func (m *memTokens) Save(_ context.Context, cid string, t spotify.Token) error {
	m.m[cid] = t
	return nil
}

func spHarness(t *testing.T, settings string) (*harness, *musictest.Spotify, *memTokens) {
	fake := musictest.NewSpotify(t, tracks...)
	toks := &memTokens{m: map[string]spotify.Token{}}
	cl := &spotify.Client{APIURL: fake.URL, AccountsURL: fake.URL, ClientID: fake.ClientID, ClientSecret: fake.ClientSecret, Tokens: toks}
	h := newHarness(t, music.Config{Spotify: cl}, settings)
	access, refresh := fake.Tokens()
	toks.m[h.cid] = spotify.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}
	return h, fake, toks
}

func TestSpotifySearchQueueNowPlayingEndNext(t *testing.T) {
	h, fake, toks := spHarness(t, `{"provider":"spotify","max_duration_seconds":600}`)
	expect(t, h.say("ada", "", "sr", "waltz"), "Queued Waddle Waltz — The Penguins at #1.")
	expect(t, h.say("bob", "", "sr", "https://open.spotify.com/track/2222222222222222222222?si=x"), "Queued Snow Dance — Flurry at #2.")
	if q := fake.Queue(); len(q) != 1 || q[0] != "spotify:track:2222222222222222222222" {
		t.Fatalf("Spotify's queue %v (the first request plays at once)", q)
	}
	// Now-playing comes from the player: the first request plays.
	res := h.run("cy", "", "np", "")
	expect(t, res.Replies[0].Text, "Now playing: Waddle Waltz — The Penguins, requested by ada.")
	if np := nowPlaying(t, res); np.Player != music.Spotify || np.TrackID != "1111111111111111111111" {
		t.Fatalf("card %+v", np)
	}
	expect(t, h.say("cy", "", "queue", ""), "Now: Waddle Waltz — The Penguins. 1. Snow Dance — Flurry (bob)")
	// The track ends on the device; the queue follows.
	fake.Next()
	expect(t, h.say("cy", "", "np", ""), "Now playing: Snow Dance — Flurry, requested by bob.")
	if n := count(t, h, `state = 'played'`); n != 1 {
		t.Fatalf("%d played", n)
	}
	expect(t, h.say("bob", "", "skip", ""), "Skipped Snow Dance")
	expect(t, h.say("cy", "", "np", ""), "Nothing is playing")
	expect(t, h.say("ada", "", "sr", "long night"), "20:00 long")

	// An expired access token is refreshed before the call.
	tok := toks.m[h.cid]
	tok.Expiry = time.Now().Add(-time.Minute)
	toks.m[h.cid] = tok
	expect(t, h.say("ada", "", "sr", "snow"), "Queued Snow Dance")
	if fake.Refreshes != 1 {
		t.Fatalf("%d refreshes", fake.Refreshes)
	}
	// A token Spotify stops accepting (401) is refreshed and the call retried.
	fake.Revoke()
	expect(t, h.say("ada", "", "sr", "waltz"), "Queued Waddle Waltz")
	if fake.Refreshes != 2 {
		t.Fatalf("%d refreshes", fake.Refreshes)
	}
	expect(t, h.say("bob", "", "sr", "https://youtu.be/aaaaaaaaaaa"), "This channel plays songs from Spotify")
}

// fire runs the module's scheduled Spotify watch once, as the worker's
// scheduler would.
func (h *harness) fire() (*schemas.Result, *time.Time) {
	h.t.Helper()
	var res *schemas.Result
	var next *time.Time
	err := h.st.InTx(context.Background(), func(tx pgx.Tx) error {
		var err error
		res, next, err = h.mod.Fire(context.Background(), &store.Job{Kind: "spotify-watch", CommunityID: h.cid}, false, tx)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return res, next
}

func (h *harness) watching() (jobs int, on bool) {
	h.t.Helper()
	if err := h.st.Pool().QueryRow(context.Background(), `SELECT (SELECT count(*) FROM scheduled_jobs WHERE community_id = $1 AND module = 'music'),
		(SELECT watching FROM music_state WHERE community_id = $1)`, h.cid).Scan(&jobs, &on); err != nil {
		h.t.Fatal(err)
	}
	return jobs, on
}

// TestSpotifyWatchFollowsThePlayer: while requests wait, a scheduled job
// reads the player, so the card changes when a song ends on the device.
func TestSpotifyWatchFollowsThePlayer(t *testing.T) {
	h, fake, _ := spHarness(t, `{"provider":"spotify"}`)
	h.say("ada", "", "sr", "waltz")
	h.say("bob", "", "sr", "snow")
	if jobs, on := h.watching(); jobs != 1 || !on {
		t.Fatalf("%d watch jobs, watching %v: want one", jobs, on)
	}
	res, next := h.fire()
	if next == nil || nowPlaying(t, res).TrackID != "1111111111111111111111" {
		t.Fatalf("first firing: %+v, next %v", res, next)
	}
	// Nothing changed: no new card.
	if res, next = h.fire(); res != nil || next == nil {
		t.Fatalf("an idle firing published %+v", res)
	}
	fake.Next()
	if res, _ = h.fire(); nowPlaying(t, res).TrackID != "2222222222222222222222" {
		t.Fatalf("after the device moved on: %+v", res)
	}
	fake.Next()
	res, next = h.fire()
	if !nowPlaying(t, res).Stop || next != nil {
		t.Fatalf("after the last request: %+v, next %v", res, next)
	}
	if _, on := h.watching(); on {
		t.Fatal("still watching an empty queue")
	}
}

func TestSpotifyErrorsAnswerInChat(t *testing.T) {
	h, fake, toks := spHarness(t, `{"provider":"spotify"}`)
	for _, c := range []struct {
		path   string
		status int
		reason string
		want   string
	}{
		{"/v1/me/player/queue", http.StatusNotFound, "NO_ACTIVE_DEVICE", "no active device"},
		{"/v1/me/player/queue", http.StatusForbidden, "PREMIUM_REQUIRED", "needs a Spotify Premium account"},
		{"/v1/search", http.StatusTooManyRequests, "", "out of quota"},
		{"/v1/search", http.StatusInternalServerError, "", "not answering"},
	} {
		fake.FailNext(c.path, c.status, c.reason)
		expect(t, h.say("ada", "", "sr", "waltz"), c.want)
		fake.FailNext(c.path, 0, "")
	}
	if n := count(t, h, `true`); n != 0 {
		t.Fatalf("%d entries after refusals", n)
	}
	fake.FailNext("/v1/me/player/pause", http.StatusNotFound, "NO_ACTIVE_DEVICE")
	expect(t, h.say("mod", "moderator", "sr", "pause"), "no active device")
	// A refresh token Spotify revoked: connect again.
	toks.m[h.cid] = spotify.Token{AccessToken: "old", RefreshToken: "revoked", Expiry: time.Now().Add(-time.Hour)}
	expect(t, h.say("ada", "", "sr", "waltz"), "connect Spotify again")
	delete(toks.m, h.cid)
	expect(t, h.say("ada", "", "sr", "waltz"), "Spotify is not connected")
}
