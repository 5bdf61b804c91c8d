package twitchtest

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Lifetimes of the tokens the fake issues, close to Twitch's: user tokens
// live about four hours, app tokens about two months.
const (
	UserTokenTTL = 4 * time.Hour
	AppTokenTTL  = 60 * 24 * time.Hour
)

// oauthState is the id.twitch.tv part of the fake (owned by oauth.go).
// Guarded by Server.mu.
type oauthState struct {
	// consent is what the next /oauth2/authorize visits answer, in order:
	// the test plays the user in the browser.
	consent []consent
	codes   map[string]authCode
	// authorizeRequests are the query strings /oauth2/authorize received.
	authorizeRequests []url.Values
	// tokenCalls counts POST /oauth2/token by grant_type.
	tokenCalls map[string]int
	// userTokenTTL overrides UserTokenTTL for the tokens issued next.
	userTokenTTL time.Duration
}

type consent struct {
	userID  string
	scopes  []string // nil: everything asked for
	decline bool
}

type authCode struct {
	userID      string
	scopes      []string
	redirectURI string
	expires     time.Time
}

// NextAuthorize makes the next /oauth2/authorize visit sign in as userID
// and consent, granting scopes (none given: every scope asked for).
func (s *Server) NextAuthorize(userID string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var granted []string
	if len(scopes) > 0 {
		granted = append([]string{}, scopes...)
	}
	s.consent = append(s.consent, consent{userID: userID, scopes: granted})
}

// NextDecline makes the next /oauth2/authorize visit decline, as a user
// pressing Cancel on Twitch's consent page.
func (s *Server) NextDecline() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.consent = append(s.consent, consent{decline: true})
}

// AuthorizeRequests returns the query strings /oauth2/authorize received.
func (s *Server) AuthorizeRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]url.Values, len(s.authorizeRequests))
	for i, q := range s.authorizeRequests {
		out[i] = url.Values(http.Header(q).Clone())
	}
	return out
}

// TokenCalls counts POST /oauth2/token requests of a grant type
// (authorization_code, refresh_token, client_credentials).
func (s *Server) TokenCalls(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls[grantType]
}

// SetUserTokenTTL sets the lifetime of the user tokens the token endpoint
// issues next (0: UserTokenTTL), so a test can hand out tokens near expiry.
func (s *Server) SetUserTokenTTL(ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userTokenTTL = ttl
}

// TokensOf returns the live access tokens issued to a user.
func (s *Server) TokensOf(userID string) []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Token
	for _, tok := range s.tokens {
		if tok.UserID == userID {
			out = append(out, *tok)
		}
	}
	return out
}

func (s *Server) routeOAuth(mux *http.ServeMux) {
	mux.HandleFunc("GET /oauth2/authorize", s.oauthAuthorize)
	mux.HandleFunc("POST /oauth2/token", s.oauthToken)
	mux.HandleFunc("GET /oauth2/validate", s.oauthValidate)
	mux.HandleFunc("POST /oauth2/revoke", s.oauthRevoke)
}

// oauthAuthorize stands for Twitch's consent page and the user's click:
// it redirects straight back to redirect_uri.
func (s *Server) oauthAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.authorizeRequests = append(s.authorizeRequests, q)
	s.mu.Unlock()
	if q.Get("client_id") != s.ClientID {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "invalid client"})
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("response_type") != "code" {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "parameter redirect_uri or response_type is invalid"})
		return
	}
	s.mu.Lock()
	if len(s.consent) == 0 {
		s.mu.Unlock()
		s.t.Errorf("twitchtest: /oauth2/authorize visited with no NextAuthorize or NextDecline queued")
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "nobody is signed in at the fake"})
		return
	}
	c := s.consent[0]
	s.consent = s.consent[1:]
	back := redirect.Query()
	if c.decline {
		s.mu.Unlock()
		back.Set("error", "access_denied")
		back.Set("error_description", "The user denied you access")
		back.Set("state", q.Get("state"))
		redirect.RawQuery = back.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
		return
	}
	scopes := c.scopes
	if scopes == nil {
		scopes = strings.Fields(q.Get("scope"))
	}
	code := randomHex(15)
	if s.codes == nil {
		s.codes = map[string]authCode{}
	}
	s.codes[code] = authCode{userID: c.userID, scopes: scopes, redirectURI: q.Get("redirect_uri"), expires: time.Now().Add(10 * time.Minute)}
	s.mu.Unlock()
	back.Set("code", code)
	back.Set("scope", strings.Join(scopes, " "))
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// oauthToken is POST /oauth2/token. Twitch takes the parameters
// form-encoded; helix sends them in the query string, which Twitch accepts
// too, so both are read.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "malformed form"})
		return
	}
	grant := r.FormValue("grant_type")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokenCalls == nil {
		s.tokenCalls = map[string]int{}
	}
	s.tokenCalls[grant]++
	if r.FormValue("client_id") != s.ClientID {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "invalid client"})
		return
	}
	if r.FormValue("client_secret") != s.ClientSecret {
		WriteJSON(w, http.StatusForbidden, map[string]any{"status": 403, "message": "invalid client secret"})
		return
	}
	userTTL := UserTokenTTL
	if s.userTokenTTL > 0 {
		userTTL = s.userTokenTTL
	}
	switch grant {
	case "authorization_code":
		code, ok := s.codes[r.FormValue("code")]
		delete(s.codes, r.FormValue("code")) // good once, even when refused
		if !ok || time.Now().After(code.expires) || code.redirectURI != r.FormValue("redirect_uri") {
			WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "Invalid authorization code"})
			return
		}
		writeToken(w, s.issueLocked(code.userID, userTTL, code.scopes))
	case "refresh_token":
		old, ok := s.refresh[r.FormValue("refresh_token")]
		if !ok {
			WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "Invalid refresh token"})
			return
		}
		// The refresh token is spent: a client that refreshes twice with the
		// same one gets "Invalid refresh token", which is how Twitch punishes
		// replicas that do not coordinate.
		delete(s.refresh, old.Refresh)
		writeToken(w, s.issueLocked(old.UserID, userTTL, old.Scopes))
	case "client_credentials":
		writeToken(w, s.issueLocked("", AppTokenTTL, nil))
	default:
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "Invalid grant type"})
	}
}

func writeToken(w http.ResponseWriter, tok *Token) {
	body := map[string]any{
		"access_token": tok.Access,
		"expires_in":   int(time.Until(tok.ExpiresAt).Seconds()),
		"token_type":   "bearer",
	}
	if tok.UserID != "" {
		body["refresh_token"] = tok.Refresh
		body["scope"] = append([]string{}, tok.Scopes...)
	}
	WriteJSON(w, http.StatusOK, body)
}

// oauthValidate is GET /oauth2/validate; Twitch documents "OAuth <token>"
// and accepts "Bearer <token>" as well.
func (s *Server) oauthValidate(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	access, ok := strings.CutPrefix(auth, "OAuth ")
	if !ok {
		access, _ = strings.CutPrefix(auth, "Bearer ")
	}
	s.mu.Lock()
	tok, found := s.tokens[access]
	var cp Token
	if found {
		cp = *tok
	}
	login := s.users[cp.UserID].Login
	s.mu.Unlock()
	if access == "" || !found || time.Now().After(cp.ExpiresAt) {
		WriteJSON(w, http.StatusUnauthorized, map[string]any{"status": 401, "message": "invalid access token"})
		return
	}
	body := map[string]any{
		"client_id":  s.ClientID,
		"scopes":     append([]string{}, cp.Scopes...),
		"expires_in": int(time.Until(cp.ExpiresAt).Seconds()),
	}
	if cp.UserID != "" {
		body["login"] = login
		body["user_id"] = cp.UserID
	}
	WriteJSON(w, http.StatusOK, body)
}

// oauthRevoke is POST /oauth2/revoke: the access token and the grant behind
// it stop working.
func (s *Server) oauthRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "malformed form"})
		return
	}
	if r.FormValue("client_id") != s.ClientID {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "invalid client"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[r.FormValue("token")]
	if !ok {
		WriteJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "message": "Invalid token"})
		return
	}
	delete(s.tokens, tok.Access)
	delete(s.refresh, tok.Refresh)
	w.WriteHeader(http.StatusOK)
}
