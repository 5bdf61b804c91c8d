package music

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	const yt, sp = "dQw4w9WgXcQ", "4uLU6hMCjMI75M1A2tKUQC"
	for _, c := range []struct {
		in   string
		ok   bool
		want Request
	}{
		{"never gonna give you up", true, Request{Kind: RequestQuery, Query: "never gonna give you up"}},
		{"  lots   of\tspace ", true, Request{Kind: RequestQuery, Query: "lots of space"}},
		{"", false, Request{}},
		{"https://www.youtube.com/watch?v=" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://www.youtube.com/watch?v=" + yt + "&t=42s&list=PL1", true, Request{Kind: RequestYouTube, ID: yt}},
		{"youtube.com/watch?v=" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://m.youtube.com/watch?v=" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://music.youtube.com/watch?v=" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://youtu.be/" + yt + "?si=abc", true, Request{Kind: RequestYouTube, ID: yt}},
		{"youtu.be/" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://www.youtube.com/shorts/" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://www.youtube.com/embed/" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://www.youtube.com/live/" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"HTTPS://WWW.YOUTUBE.COM/watch?v=" + yt, true, Request{Kind: RequestYouTube, ID: yt}},
		{"https://www.youtube.com/watch?v=short", false, Request{}},
		{"https://www.youtube.com/playlist?list=PL1", false, Request{}},
		{"https://youtu.be/", false, Request{}},
		{"spotify:track:" + sp, true, Request{Kind: RequestSpotify, ID: sp}},
		{"SPOTIFY:TRACK:" + sp, true, Request{Kind: RequestSpotify, ID: sp}},
		{"spotify:album:" + sp, false, Request{}},
		{"spotify:track:tooShort", false, Request{}},
		{"https://open.spotify.com/track/" + sp + "?si=xyz", true, Request{Kind: RequestSpotify, ID: sp}},
		{"https://open.spotify.com/intl-de/track/" + sp, true, Request{Kind: RequestSpotify, ID: sp}},
		{"open.spotify.com/track/" + sp, true, Request{Kind: RequestSpotify, ID: sp}},
		{"https://open.spotify.com/playlist/" + sp, false, Request{}},
		{"https://example.com/song.mp3", false, Request{}},
		{"javascript:alert(1)", true, Request{Kind: RequestQuery, Query: "javascript:alert(1)"}},
		{"song https://youtu.be/" + yt, true, Request{Kind: RequestQuery, Query: "song https://youtu.be/" + yt}},
	} {
		got, ok := ParseRequest(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestParseRequestBoundsQueries(t *testing.T) {
	got, ok := ParseRequest(strings.Repeat("é", MaxQuery+50))
	if !ok || utf8.RuneCountInString(got.Query) != MaxQuery {
		t.Fatalf("a long query became %d runes", utf8.RuneCountInString(got.Query))
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"song name", "https://youtu.be/dQw4w9WgXcQ", "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
		"spotify:track:4uLU6hMCjMI75M1A2tKUQC", "https://open.spotify.com/intl-fr/track/4uLU6hMCjMI75M1A2tKUQC",
		"https://youtube.com/shorts/%zz", "http://[::1", "open.spotify.com/track/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := ParseRequest(s)
		if !ok {
			if r != (Request{}) {
				t.Fatalf("refused %q but returned %+v", s, r)
			}
			return
		}
		switch r.Kind {
		case RequestQuery:
			if r.Query == "" || r.ID != "" || utf8.RuneCountInString(r.Query) > MaxQuery {
				t.Fatalf("query %+v from %q", r, s)
			}
		case RequestYouTube:
			if !youtubeID.MatchString(r.ID) {
				t.Fatalf("YouTube id %q from %q", r.ID, s)
			}
		case RequestSpotify:
			if !spotifyID.MatchString(r.ID) {
				t.Fatalf("Spotify id %q from %q", r.ID, s)
			}
		default:
			t.Fatalf("kind %d from %q", r.Kind, s)
		}
	})
}

func TestReadSettings(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want Settings
	}{
		{``, Settings{Provider: YouTube, PerUser: 3, MaxDuration: DefaultMaxDuration, MaxQueue: 50}},
		{`{"provider":"spotify","max_per_user":1,"max_duration_seconds":240,"max_queue":5,"blocked_terms":[" Nope ",""]}`,
			Settings{Provider: Spotify, PerUser: 1, MaxDuration: 240_000_000_000, MaxQueue: 5, Blocked: []string{"nope"}}},
		{`{"provider":"tidal","max_per_user":0,"max_duration_seconds":5}`, Settings{Provider: YouTube, PerUser: 3, MaxDuration: DefaultMaxDuration, MaxQueue: 50}},
		{`not json`, Settings{Provider: YouTube, PerUser: 3, MaxDuration: DefaultMaxDuration, MaxQueue: 50}},
	} {
		got := ReadSettings([]byte(c.raw))
		if got.Provider != c.want.Provider || got.PerUser != c.want.PerUser || got.MaxDuration != c.want.MaxDuration ||
			got.MaxQueue != c.want.MaxQueue || strings.Join(got.Blocked, ",") != strings.Join(c.want.Blocked, ",") {
			t.Errorf("ReadSettings(%s) = %+v, want %+v", c.raw, got, c.want)
		}
	}
}
