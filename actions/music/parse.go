package music

import (
	"net/url"
	"regexp"
	"strings"
)

// RequestKind is what `!sr` was given.
type RequestKind int

// Kinds of request.
const (
	RequestQuery RequestKind = iota
	RequestYouTube
	RequestSpotify
)

// Request is a parsed `!sr` argument.
type Request struct {
	Kind  RequestKind
	ID    string // video or track id
	Query string // free text, for RequestQuery
}

// MaxQuery bounds a search: longer text is no better a search and would
// only cost quota.
const MaxQuery = 200

var (
	youtubeID = regexp.MustCompile(`^[A-Za-z0-9_-]{11}$`)
	spotifyID = regexp.MustCompile(`^[A-Za-z0-9]{22}$`)
)

// ParseRequest reads an `!sr` argument: a YouTube URL (watch, youtu.be,
// shorts, embed, live, music.youtube.com), a Spotify track URI or
// open.spotify.com URL, or else a search. ok is false for an argument
// that names a provider's link but no valid track (a playlist, an album, a
// bad id): searching for a URL's text would play a random song.
func ParseRequest(arg string) (Request, bool) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return Request{}, false
	}
	if rest, found := cutPrefixFold(arg, "spotify:track:"); found {
		if spotifyID.MatchString(rest) {
			return Request{Kind: RequestSpotify, ID: rest}, true
		}
		return Request{}, false
	}
	if cutFold(arg, "spotify:") {
		return Request{}, false
	}
	if !strings.ContainsAny(arg, " \t") && looksLikeURL(arg) {
		return parseURL(arg)
	}
	q := strings.Join(strings.Fields(arg), " ")
	if len([]rune(q)) > MaxQuery {
		q = string([]rune(q)[:MaxQuery])
	}
	return Request{Kind: RequestQuery, Query: q}, true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func cutFold(s, prefix string) bool { _, ok := cutPrefixFold(s, prefix); return ok }

func looksLikeURL(s string) bool {
	l := strings.ToLower(s)
	for _, p := range []string{"http://", "https://", "youtu.be/", "youtube.com/", "www.youtube.com/", "m.youtube.com/",
		"music.youtube.com/", "open.spotify.com/"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}

func parseURL(raw string) (Request, bool) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return Request{}, false
	}
	host := strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
	parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
	switch host {
	case "youtu.be":
		if len(parts) >= 1 && youtubeID.MatchString(parts[0]) {
			return Request{Kind: RequestYouTube, ID: parts[0]}, true
		}
	case "youtube.com", "m.youtube.com", "music.youtube.com", "youtube-nocookie.com":
		if len(parts) == 1 && parts[0] == "watch" {
			if v := u.Query().Get("v"); youtubeID.MatchString(v) {
				return Request{Kind: RequestYouTube, ID: v}, true
			}
			return Request{}, false
		}
		if len(parts) >= 2 && (parts[0] == "shorts" || parts[0] == "embed" || parts[0] == "live" || parts[0] == "v") &&
			youtubeID.MatchString(parts[1]) {
			return Request{Kind: RequestYouTube, ID: parts[1]}, true
		}
	case "open.spotify.com":
		// Localised links put intl-<lang> first.
		if len(parts) > 0 && strings.HasPrefix(parts[0], "intl-") {
			parts = parts[1:]
		}
		if len(parts) >= 2 && parts[0] == "track" && spotifyID.MatchString(parts[1]) {
			return Request{Kind: RequestSpotify, ID: parts[1]}, true
		}
	}
	return Request{}, false
}
