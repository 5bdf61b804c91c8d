// Package music is the song-request module: `!sr <query|url>` queues a
// song, `!queue` lists the queue, `!np` names the song playing, `!skip`
// and `!remove <n>` (moderators, or the requester for their own song) and
// `!sr pause|resume` (moderators) keep control. One queue per community,
// whatever chat platform a request comes from, kept in PostgreSQL and
// changed under a row lock. The community's settings choose the player:
// YouTube plays in the now-playing browser source, which reports each
// song's end so the queue advances (TrackEnded); Spotify plays on the
// streamer's own device, connected in the portal.
package music

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.music.
const Name = "music"

// Defaults of the settings.
const (
	DefaultPerUser     = 3
	DefaultMaxDuration = 10 * time.Minute
	DefaultMaxQueue    = 50
	// History is how long finished entries are kept.
	History = 7 * 24 * time.Hour
)

const settingsSchema = `{"type": "object", "additionalProperties": false, "properties": {
  "provider": {"type": "string", "enum": ["youtube", "spotify"], "default": "youtube",
    "description": "Who plays the queue: YouTube in the now-playing browser source, or the streamer's Spotify (connect it first)"},
  "max_per_user": {"type": "integer", "minimum": 1, "maximum": 50, "default": 3,
    "description": "Songs one viewer may have waiting at once (moderators are not limited)"},
  "max_duration_seconds": {"type": "integer", "minimum": 30, "maximum": 7200, "default": 600,
    "description": "Longest song accepted"},
  "max_queue": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50,
    "description": "Most songs waiting at once"},
  "blocked_terms": {"type": "array", "maxItems": 200, "items": {"type": "string", "minLength": 1, "maxLength": 100},
    "description": "Requests whose title, artist or search contains one of these (any case) are refused"}}}`

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	return schemas.Manifest{
		Name:        Name,
		Version:     "1.0.0",
		Description: "Song requests played through YouTube in the now-playing browser source or the streamer's Spotify",
		Writes:      true,
		Commands: []schemas.CommandSpec{
			{Name: "sr", Usage: "sr <song or link> | sr pause | sr resume",
				Description: "Requests a song; moderators pause and resume playback", Permission: schemas.PermissionEveryone},
			{Name: "queue", Usage: "queue", Description: "Lists the next songs", Permission: schemas.PermissionEveryone},
			{Name: "np", Usage: "np", Description: "Names the song playing", Permission: schemas.PermissionEveryone},
			{Name: "skip", Usage: "skip", Description: "Skips the song playing (moderators, or whoever requested it)",
				Permission: schemas.PermissionEveryone},
			{Name: "remove", Usage: "remove <n>", Description: "Removes song n of !queue (moderators, or whoever requested it)",
				Permission: schemas.PermissionEveryone},
		},
		Settings: json.RawMessage(settingsSchema),
	}
}

// Config builds the module. A nil player answers that its provider is not
// set up.
type Config struct {
	Store   *store.Store
	YouTube Player
	Spotify Player
}

// New builds the music module.
func New(cfg Config) actions.Module {
	m := &module{st: cfg.Store, players: map[string]Player{}}
	if cfg.YouTube != nil {
		m.players[YouTube] = cfg.YouTube
	}
	if cfg.Spotify != nil {
		m.players[Spotify] = cfg.Spotify
	}
	mod := actions.Module{Manifest: Manifest(), Handle: m.handle, Fire: m.fire}
	if cfg.Store != nil {
		mod.Housekeep = func(ctx context.Context) error { return prune(ctx, cfg.Store, time.Now().Add(-History)) }
	}
	return mod
}

type module struct {
	st      *store.Store
	players map[string]Player
}

// Settings are one community's settings with defaults filled in.
type Settings struct {
	Provider    string
	PerUser     int
	MaxDuration time.Duration
	MaxQueue    int
	Blocked     []string
}

// ReadSettings reads raw; anything missing or out of range takes its
// default, so a bad setting never stops the queue.
func ReadSettings(raw json.RawMessage) Settings {
	s := Settings{Provider: YouTube, PerUser: DefaultPerUser, MaxDuration: DefaultMaxDuration, MaxQueue: DefaultMaxQueue}
	var in struct {
		Provider    string   `json:"provider"`
		PerUser     int      `json:"max_per_user"`
		MaxDuration int      `json:"max_duration_seconds"`
		MaxQueue    int      `json:"max_queue"`
		Blocked     []string `json:"blocked_terms"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &in) != nil {
		return s
	}
	if in.Provider == YouTube || in.Provider == Spotify {
		s.Provider = in.Provider
	}
	if in.PerUser >= 1 && in.PerUser <= 50 {
		s.PerUser = in.PerUser
	}
	if in.MaxDuration >= 30 && in.MaxDuration <= 7200 {
		s.MaxDuration = time.Duration(in.MaxDuration) * time.Second
	}
	if in.MaxQueue >= 1 && in.MaxQueue <= 500 {
		s.MaxQueue = in.MaxQueue
	}
	for _, b := range in.Blocked {
		if b = strings.TrimSpace(b); b != "" {
			s.Blocked = append(s.Blocked, strings.ToLower(b))
		}
	}
	return s
}

// blocked reports the first blocked term in any of texts.
func (s Settings) blocked(texts ...string) (string, bool) {
	for _, t := range texts {
		l := strings.ToLower(t)
		for _, b := range s.Blocked {
			if strings.Contains(l, b) {
				return b, true
			}
		}
	}
	return "", false
}

// NowPlaying is the Data of a now-playing overlay item: what the overlay's
// player plays (or Stop, or Paused).
type NowPlaying struct {
	Player    string `json:"player,omitempty"`
	Entry     int64  `json:"entry,omitempty"`
	TrackID   string `json:"track_id,omitempty"`
	Title     string `json:"title,omitempty"`
	Artist    string `json:"artist,omitempty"`
	Requester string `json:"requester,omitempty"`
	// DurationMS is the song's length, not how long the card shows.
	DurationMS int64 `json:"duration_ms,omitempty"`
	Paused     bool  `json:"paused,omitempty"`
	Stop       bool  `json:"stop,omitempty"`
}

func nowPlaying(e *Entry, paused bool) *NowPlaying {
	if e == nil {
		return &NowPlaying{Stop: true, Paused: paused}
	}
	return &NowPlaying{Player: e.Provider, Entry: e.ID, TrackID: e.TrackID, Title: e.Title, Artist: e.Artist,
		Requester: e.RequesterName, DurationMS: e.Duration.Milliseconds(), Paused: paused}
}

// Item is the overlay item for the now-playing source. Its text is plain:
// pages show it as text.
func (n *NowPlaying) Item() schemas.OverlayItem {
	data, _ := json.Marshal(n)
	text := ""
	if !n.Stop {
		text = describe(n.Title, n.Artist)
		if n.Requester != "" {
			text += " (requested by " + n.Requester + ")"
		}
	}
	return schemas.OverlayItem{Source: schemas.OverlayNowPlaying, Text: text, Data: data}
}

func describe(title, artist string) string {
	if artist == "" {
		return title
	}
	return title + " — " + artist
}

// requester is whose song a request is: the person when accounts are
// linked, so a limit holds across platforms.
func requester(inv *schemas.Invocation) string {
	if inv.PersonID != "" {
		return "person:" + inv.PersonID
	}
	return actions.UserKey(inv)
}

func (m *module) handle(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
	if m.st == nil || tx == nil {
		return nil, errors.New("music: built without a store or run without a transaction")
	}
	res := &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name}
	set := ReadSettings(inv.Settings)
	cid := inv.Community.ID
	paused, err := lock(ctx, tx, cid)
	if err != nil {
		return nil, err
	}
	var text string
	var np *NowPlaying
	switch inv.Command {
	case "sr":
		text, np, err = m.sr(ctx, inv, tx, set, paused)
	case "queue":
		text, np, err = m.queue(ctx, inv, tx, set, paused)
	case "np":
		text, np, err = m.np(ctx, inv, tx, set, paused)
	case "skip":
		text, np, err = m.skip(ctx, inv, tx, set, paused)
	case "remove":
		text, err = m.remove(ctx, inv, tx)
	default:
		return nil, fmt.Errorf("%w: music has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	if err != nil {
		r := Reply(err)
		if r == "" {
			return nil, err
		}
		// A provider's refusal is an answer, not a failure: retrying it
		// would only ask again. Every provider call comes before the
		// handler writes, so nothing half-done is committed.
		text, np = r, nil
	}
	if text != "" {
		res.Replies = []schemas.ReplyText{{Text: text}}
	}
	if np != nil {
		res.Overlays = []schemas.OverlayItem{np.Item()}
	}
	return res, nil
}

func (m *module) player(set Settings) (Player, error) {
	p, ok := m.players[set.Provider]
	if !ok {
		return nil, ErrNotConfigured
	}
	return p, nil
}

func usage(inv *schemas.Invocation) string {
	return fmt.Sprintf("Usage: %[1]ssr <song or link>, %[1]squeue, %[1]snp, %[1]sskip, %[1]sremove <n>; moderators: %[1]ssr pause, %[1]ssr resume.",
		actions.CommandPrefix(inv))
}

func (m *module) sr(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, set Settings, paused bool) (string, *NowPlaying, error) {
	arg := strings.TrimSpace(inv.ArgText)
	cid := inv.Community.ID
	if w := strings.ToLower(arg); w == "pause" || w == "resume" {
		if !actions.IsModerator(inv) {
			return "Only moderators pause and resume the music.", nil, nil
		}
		want := w == "pause"
		if want == paused {
			return map[bool]string{true: "The music is already paused.", false: "The music is already playing."}[want], nil, nil
		}
		p, err := m.player(set)
		if err != nil {
			return "", nil, err
		}
		if err := p.Pause(ctx, cid, want); err != nil {
			return "", nil, err
		}
		if err := setPaused(ctx, tx, cid, want); err != nil {
			return "", nil, err
		}
		all, err := open(ctx, tx, cid)
		if err != nil {
			return "", nil, err
		}
		playing, waiting := split(all)
		if !want && playing == nil && len(waiting) > 0 && set.Provider == YouTube {
			next, err := advance(ctx, tx, cid, "played")
			if err != nil {
				return "", nil, err
			}
			return "Music resumed.", nowPlaying(next, false), nil
		}
		return map[bool]string{true: "Music paused.", false: "Music resumed."}[want], nowPlaying(playing, want), nil
	}
	req, ok := ParseRequest(arg)
	if !ok {
		if arg == "" {
			return usage(inv), nil, nil
		}
		return "That link is not a song I can play: send a YouTube video or Spotify track link, or the song's name.", nil, nil
	}
	if req.Kind == RequestQuery {
		if term, bad := set.blocked(req.Query); bad {
			return fmt.Sprintf("Sorry, requests containing %q are not allowed here.", term), nil, nil
		}
	}
	if (req.Kind == RequestYouTube && set.Provider != YouTube) || (req.Kind == RequestSpotify && set.Provider != Spotify) {
		return fmt.Sprintf("This channel plays songs from %s: send the song's name or a %s link.", title(set.Provider), title(set.Provider)), nil, nil
	}
	all, err := open(ctx, tx, cid)
	if err != nil {
		return "", nil, err
	}
	playing, waiting := split(all)
	who := requester(inv)
	mod := actions.IsModerator(inv)
	if len(waiting) >= set.MaxQueue {
		return fmt.Sprintf("The queue is full (%d songs); try again later.", set.MaxQueue), nil, nil
	}
	mine := 0
	for _, e := range waiting {
		if e.Requester == who {
			mine++
		}
	}
	if !mod && mine >= set.PerUser {
		return fmt.Sprintf("You already have %d song(s) waiting, the most allowed here.", mine), nil, nil
	}
	p, err := m.player(set)
	if err != nil {
		return "", nil, err
	}
	var t Track
	if req.Kind == RequestQuery {
		t, err = p.Search(ctx, cid, req.Query)
	} else {
		t, err = p.Lookup(ctx, cid, req.ID)
	}
	if err != nil {
		return "", nil, err
	}
	if term, bad := set.blocked(t.Title, t.Artist); bad {
		return fmt.Sprintf("Sorry, songs matching %q are not allowed here.", term), nil, nil
	}
	if t.Duration > set.MaxDuration {
		return fmt.Sprintf("%s is %s long; the most allowed here is %s.", actions.Clip(describe(t.Title, t.Artist), 80), clock(t.Duration), clock(set.MaxDuration)), nil, nil
	}
	for _, e := range all {
		if e.Provider == t.Provider && e.TrackID == t.ID {
			return fmt.Sprintf("%s is already in the queue.", actions.Clip(describe(t.Title, t.Artist), 80)), nil, nil
		}
	}
	if err := p.Enqueue(ctx, cid, t); err != nil {
		return "", nil, err
	}
	id, err := insert(ctx, tx, cid, t, who, inv.Event.User.Name())
	if err != nil {
		return "", nil, err
	}
	if t.Provider == Spotify {
		if err := m.watch(ctx, tx, inv); err != nil {
			return "", nil, err
		}
	}
	name := actions.Clip(describe(t.Title, t.Artist), 80)
	if playing == nil && len(waiting) == 0 && !paused && set.Provider == YouTube {
		if err := start(ctx, tx, id); err != nil {
			return "", nil, err
		}
		e := Entry{ID: id, Provider: t.Provider, TrackID: t.ID, URI: t.URI, Title: t.Title, Artist: t.Artist, Duration: t.Duration,
			Requester: who, RequesterName: inv.Event.User.Name(), State: "playing"}
		return fmt.Sprintf("Now playing %s.", name), nowPlaying(&e, false), nil
	}
	pos := len(waiting) + 1
	return fmt.Sprintf("Queued %s at #%d.", name, pos), nil, nil
}

func title(provider string) string {
	if provider == Spotify {
		return "Spotify"
	}
	return "YouTube"
}

// clock shows a duration as m:ss or h:mm:ss.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// sync brings a Spotify queue up to what the device plays: entries before
// the track playing have been played. It returns the entry playing, if it
// is one of ours, and whether the queue changed.
func (m *module) sync(ctx context.Context, tx pgx.Tx, cid string, set Settings, paused bool) (*NowPlaying, *Track, error) {
	if set.Provider != Spotify {
		return nil, nil, nil
	}
	p, err := m.player(set)
	if err != nil {
		return nil, nil, err
	}
	cur, err := p.NowPlaying(ctx, cid)
	if err != nil {
		return nil, nil, err
	}
	all, err := open(ctx, tx, cid)
	if err != nil {
		return nil, nil, err
	}
	playing, _ := split(all)
	if cur == nil {
		// Nothing plays: the request that was playing is over.
		if playing != nil {
			if err := finish(ctx, tx, playing.ID, "played"); err != nil {
				return nil, nil, err
			}
			return nowPlaying(nil, paused), nil, nil
		}
		return nil, nil, nil
	}
	if playing != nil && playing.TrackID == cur.ID {
		return nil, cur, nil
	}
	idx := -1
	for i, e := range all {
		if e.State == "queued" && e.TrackID == cur.ID {
			idx = i
			break
		}
	}
	if idx < 0 {
		// The streamer's own music between requests: the requests ahead
		// still wait for their turn.
		if playing != nil {
			if err := finish(ctx, tx, playing.ID, "played"); err != nil {
				return nil, nil, err
			}
			return nowPlaying(nil, paused), cur, nil
		}
		return nil, cur, nil
	}
	for _, e := range all[:idx] {
		if err := finish(ctx, tx, e.ID, "played"); err != nil {
			return nil, nil, err
		}
	}
	if err := start(ctx, tx, all[idx].ID); err != nil {
		return nil, nil, err
	}
	e := all[idx]
	return nowPlaying(&e, paused), cur, nil
}

func (m *module) np(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, set Settings, paused bool) (string, *NowPlaying, error) {
	np, cur, err := m.sync(ctx, tx, inv.Community.ID, set, paused)
	if err != nil {
		return "", nil, err
	}
	all, err := open(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", nil, err
	}
	playing, _ := split(all)
	switch {
	case playing != nil:
		text := fmt.Sprintf("Now playing: %s, requested by %s.", actions.Clip(describe(playing.Title, playing.Artist), 100), playing.RequesterName)
		if paused {
			text = "Paused: " + text
		}
		return text, np, nil
	case cur != nil:
		return fmt.Sprintf("Now playing: %s.", actions.Clip(describe(cur.Title, cur.Artist), 100)), np, nil
	}
	return fmt.Sprintf("Nothing is playing. Request a song with %ssr <song>.", actions.CommandPrefix(inv)), np, nil
}

func (m *module) queue(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, set Settings, paused bool) (string, *NowPlaying, error) {
	np, _, err := m.sync(ctx, tx, inv.Community.ID, set, paused)
	if err != nil {
		return "", nil, err
	}
	all, err := open(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", nil, err
	}
	playing, waiting := split(all)
	var b strings.Builder
	if playing != nil {
		b.WriteString("Now: " + actions.Clip(describe(playing.Title, playing.Artist), 60) + ".")
	}
	if len(waiting) == 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("The queue is empty.")
		return b.String(), np, nil
	}
	for i, e := range waiting {
		if i == 5 {
			fmt.Fprintf(&b, " …and %d more.", len(waiting)-5)
			break
		}
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%d. %s (%s)", i+1, actions.Clip(describe(e.Title, e.Artist), 60), e.RequesterName)
	}
	return b.String(), np, nil
}

func (m *module) skip(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx, set Settings, paused bool) (string, *NowPlaying, error) {
	cid := inv.Community.ID
	if _, _, err := m.sync(ctx, tx, cid, set, paused); err != nil {
		return "", nil, err
	}
	all, err := open(ctx, tx, cid)
	if err != nil {
		return "", nil, err
	}
	playing, _ := split(all)
	if playing == nil {
		return "Nothing is playing.", nil, nil
	}
	if !actions.IsModerator(inv) && playing.Requester != requester(inv) {
		return "Only moderators, or whoever requested it, can skip this song.", nil, nil
	}
	if set.Provider == Spotify {
		p, err := m.player(set)
		if err != nil {
			return "", nil, err
		}
		if err := p.Skip(ctx, cid); err != nil {
			return "", nil, err
		}
	}
	var next *Entry
	if set.Provider == YouTube && !paused {
		if next, err = advance(ctx, tx, cid, "skipped"); err != nil {
			return "", nil, err
		}
	} else if err := finish(ctx, tx, playing.ID, "skipped"); err != nil {
		return "", nil, err
	}
	text := "Skipped " + actions.Clip(describe(playing.Title, playing.Artist), 80) + "."
	if next != nil {
		text += " Now playing " + actions.Clip(describe(next.Title, next.Artist), 80) + "."
	}
	if set.Provider == Spotify {
		// Spotify moves on by itself; the card follows at the next sync.
		return text, nil, nil
	}
	return text, nowPlaying(next, paused), nil
}

func (m *module) remove(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (string, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(inv.ArgText), "#"))
	if err != nil || n < 1 {
		return fmt.Sprintf("Usage: %sremove <n>, where n is the song's number in %squeue.", actions.CommandPrefix(inv), actions.CommandPrefix(inv)), nil
	}
	all, err := open(ctx, tx, inv.Community.ID)
	if err != nil {
		return "", err
	}
	_, waiting := split(all)
	if n > len(waiting) {
		return fmt.Sprintf("There is no song #%d in the queue (it has %d).", n, len(waiting)), nil
	}
	e := waiting[n-1]
	if !actions.IsModerator(inv) && e.Requester != requester(inv) {
		return "Only moderators, or whoever requested it, can remove that song.", nil
	}
	if err := finish(ctx, tx, e.ID, "removed"); err != nil {
		return "", err
	}
	// A song already handed to Spotify's queue stays there: Spotify has no
	// call to take one out, so the reply says so.
	if e.Provider == Spotify {
		return fmt.Sprintf("Removed #%d, %s, from the request list (Spotify may still play it: its queue cannot be edited).", n, actions.Clip(describe(e.Title, e.Artist), 80)), nil
	}
	return fmt.Sprintf("Removed #%d, %s.", n, actions.Clip(describe(e.Title, e.Artist), 80)), nil
}
