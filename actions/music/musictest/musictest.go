// Package musictest has local fakes of the YouTube Data API and the Spotify
// Web API that answer with their documented JSON, for tests of the music
// module and its players.
package musictest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Video is one video the YouTube fake knows.
type Video struct {
	ID, Title, Channel string
	Duration           string // ISO 8601, e.g. PT3M30S
	NotEmbeddable      bool
}

// YouTube fakes search.list and videos.list.
type YouTube struct {
	*httptest.Server
	Key string

	mu     sync.Mutex
	videos []Video
	// Fail, when set, is the status and reason every call answers with.
	failStatus int
	failReason string
	calls      int
}

// NewYouTube starts a fake that accepts key.
func NewYouTube(t testing.TB, key string, videos ...Video) *YouTube {
	y := &YouTube{Key: key, videos: videos}
	y.Server = httptest.NewServer(http.HandlerFunc(y.serve))
	t.Cleanup(y.Close)
	return y
}

// Fail makes every call answer status with reason (e.g. 403 quotaExceeded); 0 stops.
func (y *YouTube) Fail(status int, reason string) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.failStatus, y.failReason = status, reason
}

// Calls is how many requests reached the fake.
func (y *YouTube) Calls() int {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.calls
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func ytError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": reason,
		"errors": []map[string]any{{"reason": reason, "domain": "youtube.quota", "message": reason}}}})
}

func (y *YouTube) serve(w http.ResponseWriter, r *http.Request) {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.calls++
	if y.failStatus != 0 {
		ytError(w, y.failStatus, y.failReason)
		return
	}
	if r.URL.Query().Get("key") != y.Key {
		ytError(w, http.StatusBadRequest, "keyInvalid")
		return
	}
	switch r.URL.Path {
	case "/search":
		q := strings.ToLower(r.URL.Query().Get("q"))
		items := []any{}
		for _, v := range y.videos {
			if strings.Contains(strings.ToLower(v.Title), q) {
				items = append(items, map[string]any{"kind": "youtube#searchResult",
					"id":      map[string]any{"kind": "youtube#video", "videoId": v.ID},
					"snippet": map[string]any{"title": v.Title, "channelTitle": v.Channel}})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"kind": "youtube#searchListResponse", "items": items})
	case "/videos":
		items := []any{}
		for _, v := range y.videos {
			if v.ID == r.URL.Query().Get("id") {
				items = append(items, map[string]any{"kind": "youtube#video", "id": v.ID,
					"snippet":        map[string]any{"title": v.Title, "channelTitle": v.Channel},
					"contentDetails": map[string]any{"duration": v.Duration},
					"status":         map[string]any{"embeddable": !v.NotEmbeddable, "privacyStatus": "public"}})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"kind": "youtube#videoListResponse", "items": items})
	default:
		http.NotFound(w, r)
	}
}

// Track is one track the Spotify fake knows.
type Track struct {
	ID, Name, Artist string
	Duration         time.Duration
}

// URI is the track's Spotify URI.
func (t Track) URI() string { return "spotify:track:" + t.ID }

// Spotify fakes the accounts service (token endpoint) and the Web API
// calls the player makes, with a player whose queue Next advances.
type Spotify struct {
	*httptest.Server
	ClientID, ClientSecret string

	mu      sync.Mutex
	tracks  []Track
	access  string
	refresh string
	serial  int
	// Queue is what was added to the player's queue, in order.
	queue   []string
	playing string
	paused  bool
	// failures answer the next calls of a path with a documented error.
	fail      map[string]failure
	Refreshes int
	Codes     map[string]string // code → PKCE challenge
}

type failure struct {
	status int
	reason string
}

// NewSpotify starts a fake whose current access token is access.
func NewSpotify(t testing.TB, tracks ...Track) *Spotify {
	s := &Spotify{ClientID: "client", ClientSecret: "secret", tracks: tracks, access: "access-0", refresh: "refresh-0",
		fail: map[string]failure{}, Codes: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Tokens are the tokens the fake accepts now.
func (s *Spotify) Tokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access, s.refresh
}

// Revoke makes the current access token invalid, as expiry does: the
// next call answers 401 until the client refreshes.
func (s *Spotify) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serial++
	s.access = fmt.Sprintf("access-%d", s.serial)
}

// FailNext makes calls to path (e.g. /v1/me/player/queue) answer status
// with reason (NO_ACTIVE_DEVICE, PREMIUM_REQUIRED, or "" for none) until
// cleared with status 0.
func (s *Spotify) FailNext(path string, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.fail, path)
		return
	}
	s.fail[path] = failure{status, reason}
}

// Queue is what the player has queued.
func (s *Spotify) Queue() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queue...)
}

// Next plays the next queued track, as the player does when a track ends.
func (s *Spotify) Next() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next()
}

func (s *Spotify) next() {
	if len(s.queue) == 0 {
		s.playing = ""
		return
	}
	s.playing, s.queue = s.queue[0], s.queue[1:]
}

// Paused reports whether the player is paused.
func (s *Spotify) Paused() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.paused
}

func spError(w http.ResponseWriter, status int, msg, reason string) {
	e := map[string]any{"status": status, "message": msg}
	if reason != "" {
		e["reason"] = reason
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (s *Spotify) trackJSON(t Track) map[string]any {
	return map[string]any{"id": t.ID, "uri": t.URI(), "name": t.Name, "duration_ms": t.Duration.Milliseconds(),
		"type": "track", "artists": []map[string]any{{"name": t.Artist}}}
}

func (s *Spotify) find(id string) (Track, bool) {
	for _, t := range s.tracks {
		if t.ID == id || t.URI() == id {
			return t, true
		}
	}
	return Track{}, false
}

func (s *Spotify) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/api/token" {
		s.token(w, r)
		return
	}
	if r.URL.Path == "/authorize" {
		s.authorize(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.access {
		spError(w, http.StatusUnauthorized, "The access token expired", "")
		return
	}
	if f, ok := s.fail[r.URL.Path]; ok {
		msg := "Player command failed"
		if f.reason == "NO_ACTIVE_DEVICE" {
			msg = "Player command failed: No active device found"
		} else if f.reason == "PREMIUM_REQUIRED" {
			msg = "Player command failed: Premium required"
		}
		spError(w, f.status, msg, f.reason)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/search":
		q := strings.ToLower(r.URL.Query().Get("q"))
		items := []any{}
		for _, t := range s.tracks {
			if strings.Contains(strings.ToLower(t.Name+" "+t.Artist), q) {
				items = append(items, s.trackJSON(t))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"tracks": map[string]any{"items": items, "total": len(items)}})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/tracks/"):
		t, ok := s.find(strings.TrimPrefix(r.URL.Path, "/v1/tracks/"))
		if !ok {
			spError(w, http.StatusNotFound, "Non existing id", "")
			return
		}
		writeJSON(w, http.StatusOK, s.trackJSON(t))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/me/player/queue":
		uri := r.URL.Query().Get("uri")
		if _, ok := s.find(uri); !ok {
			spError(w, http.StatusBadRequest, "Invalid track uri", "")
			return
		}
		s.queue = append(s.queue, uri)
		if s.playing == "" {
			s.next()
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/me/player/currently-playing":
		if s.playing == "" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		t, _ := s.find(s.playing)
		writeJSON(w, http.StatusOK, map[string]any{"is_playing": !s.paused, "progress_ms": 1000,
			"currently_playing_type": "track", "item": s.trackJSON(t)})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/me/player/next":
		s.next()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && r.URL.Path == "/v1/me/player/pause":
		s.paused = true
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && r.URL.Path == "/v1/me/player/play":
		s.paused = false
		w.WriteHeader(http.StatusNoContent)
	default:
		spError(w, http.StatusNotFound, "Service not found", "")
	}
}

// token serves the accounts service's /api/token for both grants.
func (s *Spotify) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.ClientID || secret != s.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		challenge, ok := s.Codes[r.PostForm.Get("code")]
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			return
		}
		delete(s.Codes, r.PostForm.Get("code"))
	case "refresh_token":
		if r.PostForm.Get("refresh_token") != s.refresh {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "Refresh token revoked"})
			return
		}
		s.Refreshes++
	default:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	s.serial++
	s.access = fmt.Sprintf("access-%d", s.serial)
	writeJSON(w, http.StatusOK, map[string]any{"access_token": s.access, "token_type": "Bearer", "expires_in": 3600,
		"scope": "user-read-playback-state user-modify-playback-state user-read-currently-playing"})
}

// authorize is the consent page: it consents at once, as a streamer who
// clicks Agree, and sends the browser back with a code bound to the PKCE
// challenge.
func (s *Spotify) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("redirect_uri") == "" {
		http.Error(w, "INVALID_CLIENT", http.StatusBadRequest)
		return
	}
	for _, scope := range []string{"user-read-playback-state", "user-modify-playback-state", "user-read-currently-playing"} {
		if !strings.Contains(q.Get("scope"), scope) {
			http.Error(w, "missing scope "+scope, http.StatusBadRequest)
			return
		}
	}
	s.serial++
	code := fmt.Sprintf("code-%d", s.serial)
	s.Codes[code] = q.Get("code_challenge")
	http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+q.Get("state"), http.StatusFound)
}
