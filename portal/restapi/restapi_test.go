package restapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/portal/restapi"
	"github.com/waddlebot/waddlebot/schemas"
)

var ctx = context.Background()

type env struct {
	t      *testing.T
	st     *store.Store
	srv    *restapi.Server
	url    string
	clock  *clock.Fake
	owner  store.PortalUser
	mod    store.PortalUser
	super  store.PortalUser
	a, b   schemas.Community // owner owns a; super owns b
	mu     sync.Mutex
	notice map[string]int
}

type envOpts struct {
	noNATS     bool
	rateLimit  int
	rateWindow time.Duration
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, st: storetest.New(t), clock: clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), notice: map[string]int{}}
	cfg := restapi.Config{Store: e.st, Clock: e.clock, Logger: logging.Discard(), RateLimit: o.rateLimit, RateWindow: o.rateWindow}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 10000
	}
	if !o.noNATS {
		nt := natstest.Start(t, nil)
		sub, err := nt.Conn.NC.Subscribe(schemas.SubjectControl+".>", func(m *nats.Msg) {
			e.mu.Lock()
			e.notice[m.Subject]++
			e.mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		if err := nt.Conn.NC.Flush(); err != nil {
			t.Fatal(err)
		}
		cfg.Conn = nt.Connect(t)
	}
	srv, err := restapi.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	e.owner = e.user("1", false)
	e.mod = e.user("2", false)
	e.super = e.user("9", true)
	e.a = e.community(e.owner, "Alpha")
	e.b = e.community(e.super, "Beta")
	if err := e.st.SetMember(ctx, "test", e.a.ID, e.mod.ID, store.RoleModerator, nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range []schemas.Manifest{alias.Manifest(), greetManifest()} {
		if _, err := e.st.UpsertManifest(ctx, m, true); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func greetManifest() schemas.Manifest {
	return schemas.Manifest{Name: "greet", Version: "1.0.0", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "hello", Permission: "everyone"}},
		Settings: json.RawMessage(`{"type":"object","properties":{"greeting":{"type":"string","maxLength":10},"times":{"type":"integer","minimum":1}},"additionalProperties":false}`)}
}

func (e *env) user(id string, super bool) store.PortalUser {
	u, err := e.st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: id, Login: "u" + id}, "User "+id, super)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) community(owner store.PortalUser, name string) schemas.Community {
	c, err := e.st.CreateOwnedCommunity(ctx, "test", owner.ID, store.NewCommunity{Name: name}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) key(u store.PortalUser, community string, scopes ...string) string {
	e.t.Helper()
	if len(scopes) == 0 {
		scopes = store.APIScopes
	}
	secret, _, err := e.st.CreateAPIKey(ctx, "test", store.NewAPIKey{Name: "k", UserID: u.ID, CommunityID: community, Scopes: scopes}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r resp) code() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r resp) details() map[string]any {
	e, _ := r.body["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	return d
}

func (r resp) items() []any {
	l, _ := r.body["items"].([]any)
	return l
}

func (e *env) do(key, method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer hr.Body.Close()
	raw, _ := io.ReadAll(hr.Body)
	r := resp{status: hr.StatusCode, header: hr.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: answer not JSON (%d): %s", method, path, hr.StatusCode, raw)
		}
	}
	return r
}

func (e *env) expect(r resp, status int, code string) {
	e.t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		e.t.Fatalf("want %d %s, got %d: %s", status, code, r.status, r.raw)
	}
	if status >= 400 {
		er, _ := r.body["error"].(map[string]any)
		if er == nil || er["message"] == "" {
			e.t.Fatalf("error body lacks error.message: %s", r.raw)
		}
	}
}

func (e *env) notices(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.notice[schemas.ControlCommunity(id)]
}

func (e *env) waitNotice(id string, atLeast int) {
	e.t.Helper()
	natstest.Eventually(e.t, 5*time.Second, "change notice", func() bool { return e.notices(id) >= atLeast })
}

func (e *env) actions(communityID string) []string {
	e.t.Helper()
	rows, err := e.st.Pool().Query(ctx, `SELECT action FROM audit_log WHERE coalesce(community_id::text, '') = $1 ORDER BY id`, communityID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		_ = rows.Scan(&a)
		out = append(out, a)
	}
	return out
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// every route, with a body that passes decoding, for the checks that apply
// to all of them.
func everyRoute(e *env, id string) [][3]string {
	c := "/api/v1/communities/" + id
	return [][3]string{
		{"GET", "/api/v1/communities", ""},
		{"POST", "/api/v1/communities", `{"name":"X"}`},
		{"GET", c, ""},
		{"PATCH", c, `{}`},
		{"DELETE", c, ""},
		{"GET", c + "/members", ""},
		{"POST", c + "/members", `{"platform":"twitch","platform_user_id":"77","role":"moderator"}`},
		{"PUT", c + "/members/" + e.mod.ID, `{"role":"admin"}`},
		{"DELETE", c + "/members/" + e.mod.ID, ""},
		{"GET", c + "/channels", ""},
		{"GET", c + "/modules", ""},
		{"PUT", c + "/modules/greet/enabled", `{"enabled":false}`},
		{"PUT", c + "/modules/greet/settings", `{}`},
		{"GET", c + "/commands", ""},
		{"PUT", c + "/commands/hello", `{}`},
		{"DELETE", c + "/commands/hello", ""},
		{"GET", c + "/aliases", ""},
		{"PUT", c + "/aliases/hi", `{"target":"hello"}`},
		{"DELETE", c + "/aliases/hi", ""},
		{"GET", c + "/audit", ""},
		{"POST", c + "/channels", `{"platform":"twitch","channel_id":"1"}`},
		{"DELETE", c + "/channels/twitch/1", ""},
		{"POST", c + "/claim", ""},
		{"GET", c + "/quotes", ""},
		{"POST", c + "/quotes", `{"text":"hi"}`},
		{"DELETE", c + "/quotes/1", ""},
		{"GET", c + "/reputation", ""},
		{"GET", c + "/browser-sources", ""},
		{"POST", c + "/browser-sources/alerts/rotate", ""},
		{"PUT", c + "/browser-sources/alerts/look", `{"theme":"dark","font_size":20,"width":800,"height":200}`},
		{"PUT", c + "/modules/greet/secrets/api_key_secret", `{"value":"x"}`},
		{"DELETE", c + "/modules/greet/secrets/api_key_secret", ""},
		{"GET", "/api/v1/admin/users", ""},
		{"PUT", "/api/v1/admin/users/" + e.mod.ID + "/super-admin", `{"value":false}`},
		{"PUT", "/api/v1/admin/users/" + e.mod.ID + "/disabled", `{"value":false}`},
		{"GET", "/api/v1/admin/audit", ""},
		{"GET", "/api/v1/admin/external", ""},
		{"POST", "/api/v1/admin/external", `{"manifest":{},"kind":"nats"}`},
		{"DELETE", "/api/v1/admin/external/x", ""},
		{"POST", "/api/v1/admin/external/x/creds", ""},
	}
}

func TestEveryEndpointNeedsAValidKey(t *testing.T) {
	e := newEnv(t, envOpts{})
	revoked := e.key(e.owner, e.a.ID)
	k, err := e.st.APIKeyBySecret(ctx, revoked)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.RevokeAPIKey(ctx, "test", e.owner.ID, k.ID, false, e.clock.Now(), nil); err != nil {
		t.Fatal(err)
	}
	past := e.clock.Now().Add(-time.Minute)
	expired, _, err := e.st.CreateAPIKey(ctx, "test", store.NewAPIKey{Name: "old", UserID: e.owner.ID, CommunityID: e.a.ID,
		Scopes: store.APIScopes, ExpiresAt: &past}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.srv.Routes()) != len(everyRoute(e, e.a.ID)) {
		t.Fatalf("the test covers %d routes, the server has %d", len(everyRoute(e, e.a.ID)), len(e.srv.Routes()))
	}
	for _, rt := range everyRoute(e, e.a.ID) {
		for name, key := range map[string]string{"none": "", "unknown": "wbk_" + strings.Repeat("x", 43), "revoked": revoked,
			"expired": expired, "not a key": "abc"} {
			r := e.do(key, rt[0], rt[1], rt[2])
			if r.status != http.StatusUnauthorized {
				t.Fatalf("%s %s with %s key: %d %s", rt[0], rt[1], name, r.status, r.raw)
			}
		}
	}
	if !has(e.actions(""), "api.refused") {
		t.Fatal("refusals were not audited")
	}
}

func TestScopesAreEnforced(t *testing.T) {
	e := newEnv(t, envOpts{})
	need := map[string]string{}
	for _, rt := range e.srv.Routes() {
		need[rt[0]+" "+rt[1]] = rt[2]
	}
	for _, rt := range everyRoute(e, e.a.ID) {
		pattern := ""
		for _, x := range e.srv.Routes() {
			if x[0] == rt[0] && matches("/api/v1"+x[1], rt[1]) {
				pattern = x[0] + " " + x[1]
			}
		}
		scope := need[pattern]
		if scope == "" {
			t.Fatalf("no route for %s %s", rt[0], rt[1])
		}
		var others []string
		for _, s := range store.APIScopes {
			if s != scope {
				others = append(others, s)
			}
		}
		key := e.key(e.super, "", others...)
		r := e.do(key, rt[0], rt[1], rt[2])
		e.expect(r, http.StatusForbidden, "insufficient_scope")
	}
}

func matches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], "{") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func TestKeyOfAnotherCommunityIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.owner, e.a.ID)
	for _, rt := range everyRoute(e, e.b.ID) {
		if !strings.Contains(rt[1], e.b.ID) {
			continue
		}
		e.expect(e.do(key, rt[0], rt[1], rt[2]), http.StatusForbidden, "wrong_community")
	}
	e.expect(e.do(key, "GET", "/api/v1/communities/not-a-uuid", nil), http.StatusNotFound, "not_found")
	// The list shows only the key's community.
	r := e.do(key, "GET", "/api/v1/communities", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 1 || r.items()[0].(map[string]any)["id"] != e.a.ID {
		t.Fatalf("community key lists %s", r.raw)
	}
	// Recorded where the key belongs, whose owner answers for it.
	if !has(e.actions(e.a.ID), "api.refused") {
		t.Fatalf("refusal not audited: %v", e.actions(e.a.ID))
	}
	// A key outlives no role: the moderator's key cannot change settings.
	modKey := e.key(e.mod, e.a.ID)
	e.expect(e.do(modKey, "PATCH", "/api/v1/communities/"+e.a.ID, `{"name":"Hijack"}`), http.StatusForbidden, "forbidden")
	// A site-wide key of someone no longer super-admin does nothing.
	if _, err := e.st.Pool().Exec(ctx, `UPDATE portal_users SET super_admin = false WHERE id = $1`, e.super.ID); err != nil {
		t.Fatal(err)
	}
	e.expect(e.do(e.key(e.super, ""), "GET", "/api/v1/communities", nil), http.StatusForbidden, "forbidden")
}

func TestCommunities(t *testing.T) {
	e := newEnv(t, envOpts{})
	site := e.key(e.super, "")
	r := e.do(site, "POST", "/api/v1/communities", map[string]any{"name": "Gamma", "prefix": "?", "time_zone": "Europe/Berlin"})
	e.expect(r, http.StatusCreated, "")
	id := r.body["id"].(string)
	e.waitNotice(id, 1)
	if r.body["role"] != "owner" || r.body["locale"] != "en" {
		t.Fatalf("created %s", r.raw)
	}
	e.expect(e.do(e.key(e.owner, e.a.ID), "POST", "/api/v1/communities", `{"name":"X"}`), http.StatusForbidden, "forbidden")
	e.expect(e.do(site, "POST", "/api/v1/communities", `{"name":"X","colour":"red"}`), http.StatusBadRequest, "bad_json")
	e.expect(e.do(site, "POST", "/api/v1/communities", `{"name":`), http.StatusBadRequest, "bad_json")
	e.expect(e.do(site, "POST", "/api/v1/communities", `{"name":"X"} {}`), http.StatusBadRequest, "bad_json")
	// A body over the limit says so, rather than looking like broken JSON.
	e.expect(e.do(site, "POST", "/api/v1/communities", `{"name":"`+strings.Repeat("x", 2<<20)+`"}`), http.StatusRequestEntityTooLarge, "too_large")
	r = e.do(site, "POST", "/api/v1/communities", `{"name":"","prefix":"#","time_zone":"Mars/Base"}`)
	e.expect(r, http.StatusUnprocessableEntity, "invalid")
	for _, f := range []string{"name", "prefix", "time_zone"} {
		if _, ok := r.details()[f]; !ok {
			t.Fatalf("no detail for %s: %s", f, r.raw)
		}
	}

	// Pages of one walk every community once.
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := e.do(site, "GET", "/api/v1/communities?limit=1&cursor="+url.QueryEscape(cursor), nil)
		e.expect(r, http.StatusOK, "")
		for _, it := range r.items() {
			seen[it.(map[string]any)["id"].(string)] = true
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 3 {
		t.Fatalf("pages showed %d communities, want 3", len(seen))
	}
	e.expect(e.do(site, "GET", "/api/v1/communities?limit=0", nil), http.StatusBadRequest, "bad_limit")
	e.expect(e.do(site, "GET", "/api/v1/communities?cursor=!!!", nil), http.StatusBadRequest, "bad_cursor")

	ownerKey := e.key(e.owner, e.a.ID)
	c := "/api/v1/communities/" + e.a.ID
	r = e.do(ownerKey, "GET", c, nil)
	e.expect(r, http.StatusOK, "")
	if r.body["name"] != "Alpha" || r.body["role"] != "owner" {
		t.Fatalf("got %s", r.raw)
	}
	e.expect(e.do(ownerKey, "PATCH", c, `{"prefix":"##"}`), http.StatusUnprocessableEntity, "invalid")
	before := e.notices(e.a.ID)
	r = e.do(ownerKey, "PATCH", c, `{"name":"Alpha 2","locale":"fr"}`)
	e.expect(r, http.StatusOK, "")
	if r.body["name"] != "Alpha 2" || r.body["prefix"] != "!" {
		t.Fatalf("patched %s", r.raw)
	}
	e.waitNotice(e.a.ID, before+1)
	got, _ := e.st.Community(ctx, e.a.ID)
	if got.Name != "Alpha 2" || got.Locale != "fr" {
		t.Fatalf("stored %+v", got)
	}
	e.expect(e.do(ownerKey, "PUT", c, `{}`), http.StatusMethodNotAllowed, "method_not_allowed")
	e.expect(e.do(ownerKey, "GET", "/api/v1/nothing", nil), http.StatusNotFound, "not_found")
	acts := e.actions(e.a.ID)
	if !has(acts, "community.update") || !has(acts, "api.request") {
		t.Fatalf("audit %v", acts)
	}
	e.expect(e.do(ownerKey, "DELETE", c, nil), http.StatusNoContent, "")
	if _, err := e.st.Community(ctx, e.a.ID); err == nil {
		t.Fatal("community still there")
	}
}

func TestMembers(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.owner, e.a.ID)
	m := "/api/v1/communities/" + e.a.ID + "/members"
	r := e.do(key, "POST", m, `{"platform":"discord","platform_user_id":"55","role":"admin"}`)
	e.expect(r, http.StatusCreated, "")
	newID := r.body["user_id"].(string)
	e.expect(e.do(key, "POST", m, `{"platform":"discord","platform_user_id":"55","role":"admin"}`), http.StatusConflict, "conflict")
	e.expect(e.do(key, "POST", m, `{"platform":"myspace","platform_user_id":"","role":"king"}`), http.StatusUnprocessableEntity, "invalid")
	r = e.do(key, "GET", m+"?limit=2", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 2 || r.body["next_cursor"] == nil {
		t.Fatalf("page 1 %s", r.raw)
	}
	r = e.do(key, "GET", m+"?limit=2&cursor="+r.body["next_cursor"].(string), nil)
	if len(r.items()) != 1 || r.body["next_cursor"] != nil {
		t.Fatalf("page 2 %s", r.raw)
	}
	e.expect(e.do(key, "PUT", m+"/"+newID, `{"role":"moderator"}`), http.StatusOK, "")
	e.expect(e.do(key, "PUT", m+"/"+newID, `{"role":"emperor"}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(key, "PUT", m+"/"+e.super.ID, `{"role":"admin"}`), http.StatusNotFound, "not_found")
	e.expect(e.do(key, "DELETE", m+"/"+e.owner.ID, nil), http.StatusConflict, "last_owner")
	e.expect(e.do(key, "DELETE", m+"/"+newID, nil), http.StatusNoContent, "")
	if role, _ := e.st.MemberRole(ctx, e.a.ID, newID); role != "" {
		t.Fatalf("still %s", role)
	}
	// An admin's key cannot touch owners.
	admin := e.user("3", false)
	if err := e.st.SetMember(ctx, "test", e.a.ID, admin.ID, store.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	e.expect(e.do(e.key(admin, e.a.ID), "PUT", m+"/"+e.mod.ID, `{"role":"owner"}`), http.StatusForbidden, "forbidden")
	acts := e.actions(e.a.ID)
	for _, a := range []string{"member.add", "member.role", "member.remove"} {
		if !has(acts, a) {
			t.Fatalf("no %s in %v", a, acts)
		}
	}
	e.waitNotice(e.a.ID, 3)
}

func TestChannels(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, id := range []string{"c1", "c2", "c3"} {
		if err := e.st.ClaimChannel(ctx, "test", e.a.ID, store.Channel{Platform: "twitch", ChannelID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	key := e.key(e.mod, e.a.ID, store.ScopeCommunitiesRead)
	r := e.do(key, "GET", "/api/v1/communities/"+e.a.ID+"/channels?limit=2", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 2 {
		t.Fatalf("%s", r.raw)
	}
	r = e.do(key, "GET", "/api/v1/communities/"+e.a.ID+"/channels?cursor="+r.body["next_cursor"].(string), nil)
	if len(r.items()) != 1 || r.items()[0].(map[string]any)["channel_id"] != "c3" {
		t.Fatalf("%s", r.raw)
	}
}

func TestModules(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.owner, e.a.ID)
	base := "/api/v1/communities/" + e.a.ID + "/modules"
	r := e.do(key, "GET", base, nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 2 {
		t.Fatalf("%s", r.raw)
	}
	g := r.items()[1].(map[string]any)
	if g["name"] != "greet" || g["enabled"] != true || g["chosen"] != false || g["manifest"] == nil {
		t.Fatalf("greet %v", g)
	}
	e.expect(e.do(key, "PUT", base+"/greet/enabled", `{}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(key, "PUT", base+"/nope/enabled", `{"enabled":true}`), http.StatusNotFound, "not_found")
	r = e.do(key, "PUT", base+"/greet/enabled", `{"enabled":false}`)
	e.expect(r, http.StatusOK, "")
	if r.body["enabled"] != false || r.body["chosen"] != true {
		t.Fatalf("%s", r.raw)
	}
	r = e.do(key, "PUT", base+"/greet/settings", `{"greeting":"far too long a greeting","times":0,"extra":1}`)
	e.expect(r, http.StatusUnprocessableEntity, "invalid")
	if len(r.details()) == 0 {
		t.Fatalf("no details: %s", r.raw)
	}
	e.expect(e.do(key, "PUT", base+"/greet/settings", `[1]`), http.StatusBadRequest, "bad_json")
	r = e.do(key, "PUT", base+"/greet/settings", `{"greeting":"hi","times":2}`)
	e.expect(r, http.StatusOK, "")
	choices, _ := e.st.CommunityModules(ctx, e.a.ID)
	if ch := choices["greet"]; ch.Enabled || !strings.Contains(string(ch.Settings), `"hi"`) {
		t.Fatalf("stored %+v", ch)
	}
	acts := e.actions(e.a.ID)
	if !has(acts, "module.enabled") || !has(acts, "module.settings") {
		t.Fatalf("%v", acts)
	}
	e.waitNotice(e.a.ID, 2)
	// A moderator reads but does not change.
	mk := e.key(e.mod, e.a.ID)
	e.expect(e.do(mk, "GET", base, nil), http.StatusOK, "")
	e.expect(e.do(mk, "PUT", base+"/greet/enabled", `{"enabled":true}`), http.StatusForbidden, "forbidden")
}

func TestCommandOverrides(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.owner, e.a.ID)
	base := "/api/v1/communities/" + e.a.ID + "/commands"
	e.expect(e.do(key, "PUT", base+"/nosuch", `{"enabled":false}`), http.StatusNotFound, "not_found")
	e.expect(e.do(key, "PUT", base+"/hello", `{"permission":"god"}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(key, "PUT", base+"/hello", `{"user_cooldown_ms":-1}`), http.StatusUnprocessableEntity, "invalid")
	r := e.do(key, "PUT", base+"/hello", `{"enabled":false,"permission":"moderator","user_cooldown_ms":5000}`)
	e.expect(r, http.StatusOK, "")
	r = e.do(key, "GET", base, nil)
	if len(r.items()) != 1 || r.items()[0].(map[string]any)["permission"] != "moderator" {
		t.Fatalf("%s", r.raw)
	}
	e.expect(e.do(key, "DELETE", base+"/hello", nil), http.StatusNoContent, "")
	e.expect(e.do(key, "DELETE", base+"/hello", nil), http.StatusNotFound, "not_found")
	acts := e.actions(e.a.ID)
	if !has(acts, "command.override_set") || !has(acts, "command.override_reset") {
		t.Fatalf("%v", acts)
	}
	e.waitNotice(e.a.ID, 2)
}

func TestAliases(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.mod, e.a.ID, store.ScopeAliasesWrite, store.ScopeCommunitiesRead)
	base := "/api/v1/communities/" + e.a.ID + "/aliases"
	e.expect(e.do(key, "PUT", base+"/hi", `{"target":"hello there"}`), http.StatusCreated, "")
	r := e.do(key, "PUT", base+"/hi", `{"target":"!hello again"}`)
	e.expect(r, http.StatusOK, "")
	if r.body["target"] != "hello again" {
		t.Fatalf("%s", r.raw)
	}
	for name, body := range map[string]string{
		"Bad_Name": `{"target":"hello"}`, // upper case
		"hello":    `{"target":"hello"}`, // a command's name
		"loop":     `{"target":"loop"}`,  // runs itself
		"ghost":    `{"target":"nothing {1}"}`,
		"nl":       `{"target":"hello\nworld"}`,
	} {
		r := e.do(key, "PUT", base+"/"+name, body)
		e.expect(r, http.StatusUnprocessableEntity, "invalid")
	}
	e.expect(e.do(key, "PUT", base+"/x", `{"tgt":"hello"}`), http.StatusBadRequest, "bad_json")
	r = e.do(key, "GET", base, nil)
	if len(r.items()) != 1 {
		t.Fatalf("%s", r.raw)
	}
	e.expect(e.do(key, "DELETE", base+"/hi", nil), http.StatusNoContent, "")
	e.expect(e.do(key, "DELETE", base+"/hi", nil), http.StatusNotFound, "not_found")
	acts := e.actions(e.a.ID)
	if !has(acts, "alias.set") || !has(acts, "alias.remove") {
		t.Fatalf("%v", acts)
	}
	e.waitNotice(e.a.ID, 3)
}

func TestAuditPages(t *testing.T) {
	e := newEnv(t, envOpts{})
	for i := 0; i < 5; i++ {
		if err := e.st.Audit(ctx, nil, store.AuditEntry{CommunityID: e.a.ID, Actor: "test", Action: "test.entry"}); err != nil {
			t.Fatal(err)
		}
	}
	key := e.key(e.owner, e.a.ID, store.ScopeAuditRead)
	base := "/api/v1/communities/" + e.a.ID + "/audit"
	var ids []float64
	cursor := ""
	for {
		r := e.do(key, "GET", base+"?limit=2&cursor="+cursor, nil)
		e.expect(r, http.StatusOK, "")
		for _, it := range r.items() {
			ids = append(ids, it.(map[string]any)["id"].(float64))
		}
		next, _ := r.body["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	// 5 entries, plus the community's creation, the moderator's add and
	// the key's creation.
	if len(ids) != 8 {
		t.Fatalf("got %d entries: %v", len(ids), ids)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i] >= ids[i-1] {
			t.Fatalf("not newest first: %v", ids)
		}
	}
	e.expect(e.do(key, "GET", base+"?cursor=eyJhIjoieCJ9", nil), http.StatusBadRequest, "bad_cursor") // {"a":"x"}
}

func TestRateLimit(t *testing.T) {
	for _, noNATS := range []bool{false, true} {
		t.Run(map[bool]string{false: "jetstream", true: "memory"}[noNATS], func(t *testing.T) {
			e := newEnv(t, envOpts{noNATS: noNATS, rateLimit: 3, rateWindow: time.Minute})
			key := e.key(e.owner, e.a.ID)
			other := e.key(e.owner, e.a.ID)
			for i := 0; i < 3; i++ {
				e.expect(e.do(key, "GET", "/api/v1/communities", nil), http.StatusOK, "")
			}
			r := e.do(key, "GET", "/api/v1/communities", nil)
			e.expect(r, http.StatusTooManyRequests, "rate_limited")
			if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
				t.Fatalf("Retry-After %q", ra)
			}
			// Keys count apart.
			e.expect(e.do(other, "GET", "/api/v1/communities", nil), http.StatusOK, "")
			e.clock.Advance(61 * time.Second)
			e.expect(e.do(key, "GET", "/api/v1/communities", nil), http.StatusOK, "")
		})
	}
}

func TestLastUsedIsRecorded(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.owner, e.a.ID)
	e.expect(e.do(key, "GET", "/api/v1/communities", nil), http.StatusOK, "")
	k, err := e.st.APIKeyBySecret(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(e.clock.Now()) {
		t.Fatalf("last used %v, want %v", k.LastUsedAt, e.clock.Now())
	}
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	e := newEnv(t, envOpts{noNATS: true})
	r := e.do("", "GET", "/api/v1/openapi.json", nil)
	e.expect(r, http.StatusOK, "")
	if r.body["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", r.body["openapi"])
	}
	info, _ := r.body["info"].(map[string]any)
	if info["title"] == nil || info["version"] == nil {
		t.Fatalf("info %v", info)
	}
	paths, _ := r.body["paths"].(map[string]any)
	for _, rt := range e.srv.Routes() {
		p, _ := paths["/api/v1"+rt[1]].(map[string]any)
		op, _ := p[strings.ToLower(rt[0])].(map[string]any)
		if op == nil {
			t.Fatalf("%s %s missing from the document", rt[0], rt[1])
		}
		if op["responses"] == nil || op["operationId"] == nil {
			t.Fatalf("%s %s lacks responses or operationId", rt[0], rt[1])
		}
		// Actions (claim, rotate, mint) are POSTs that take no body.
		action := strings.HasSuffix(rt[1], "/claim") || strings.HasSuffix(rt[1], "/rotate") || strings.HasSuffix(rt[1], "/creds")
		if rt[0] == "POST" && action && op["requestBody"] != nil {
			t.Fatalf("%s %s documents a body it does not read", rt[0], rt[1])
		}
		if (rt[0] == "POST" && !action) || rt[0] == "PUT" || rt[0] == "PATCH" {
			if op["requestBody"] == nil {
				t.Fatalf("%s %s lacks a request body", rt[0], rt[1])
			}
		}
	}
	ids := map[string]bool{}
	for _, p := range paths {
		for _, op := range p.(map[string]any) {
			id := op.(map[string]any)["operationId"].(string)
			if ids[id] {
				t.Fatalf("operationId %s twice", id)
			}
			ids[id] = true
		}
	}
}
