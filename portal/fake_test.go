package portal_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// oauthFake stands for Discord's OAuth2 (PKCE, /users/@me) or Slack's
// OpenID Connect (openid.connect.token, openid.connect.userInfo): the
// Discord fake of collectors/discord/discordtest serves bot installs, and
// its /users/@me answers bot tokens only.
type oauthFake struct {
	t        testing.TB
	srv      *httptest.Server
	kind     string // discord or slack
	clientID string
	secret   string

	mu          sync.Mutex
	next        []fakeUser
	codes       map[string]fakeCode
	tokens      map[string]fakeUser
	refusedPKCE int
	n           int
}

type fakeUser struct{ ID, Name string }

type fakeCode struct {
	user      fakeUser
	redirect  string
	challenge string
}

func newOAuthFake(t testing.TB, kind string) *oauthFake {
	f := &oauthFake{t: t, kind: kind, clientID: kind + "-client", secret: kind + "-secret",
		codes: map[string]fakeCode{}, tokens: map[string]fakeUser{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("GET /me", f.me)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *oauthFake) nextUser(id, name string) {
	f.mu.Lock()
	f.next = append(f.next, fakeUser{ID: id, Name: name})
	f.mu.Unlock()
}

func (f *oauthFake) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refusedPKCE
}

func (f *oauthFake) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || q.Get("client_id") != f.clientID || q.Get("response_type") != "code" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	if f.kind == "discord" && (q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("scope") != "identify") {
		http.Error(w, "discord fake: PKCE S256 and scope identify expected", http.StatusBadRequest)
		return
	}
	if f.kind == "slack" && q.Get("scope") != "openid profile" {
		http.Error(w, "slack fake: scope openid profile expected", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	if len(f.next) == 0 {
		f.mu.Unlock()
		f.t.Errorf("%s fake: authorize with no user queued", f.kind)
		http.Error(w, "nobody", http.StatusBadRequest)
		return
	}
	u := f.next[0]
	f.next = f.next[1:]
	f.n++
	code := f.kind + "-code-" + string(rune('a'+f.n))
	f.codes[code] = fakeCode{user: u, redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge")}
	f.mu.Unlock()
	v := back.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (f *oauthFake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("client_id") != f.clientID || r.PostForm.Get("client_secret") != f.secret {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "invalid_client"})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	code, ok := f.codes[r.PostForm.Get("code")]
	delete(f.codes, r.PostForm.Get("code"))
	if !ok || code.redirect != r.PostForm.Get("redirect_uri") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_grant"})
		return
	}
	if code.challenge != "" {
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != code.challenge {
			f.refusedPKCE++
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "code verifier mismatch"})
			return
		}
	}
	tok := "tok-" + code.user.ID + "-" + r.PostForm.Get("code")
	f.tokens[tok] = code.user
	body := map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600}
	if f.kind == "slack" {
		body["ok"] = true
		body["id_token"] = "unused.jwt.here"
	}
	writeJSON(w, http.StatusOK, body)
}

func (f *oauthFake) me(w http.ResponseWriter, r *http.Request) {
	tok := r.Header.Get("Authorization")
	f.mu.Lock()
	u, ok := f.tokens[strings.TrimPrefix(tok, "Bearer ")]
	f.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	if f.kind == "slack" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "sub": u.ID, "https://slack.com/user_id": u.ID,
			"https://slack.com/team_id": "T1", "name": u.Name})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "username": u.Name, "global_name": u.Name + " G"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
