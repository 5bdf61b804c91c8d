package restapi_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.st.Pool().Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// auditDetails is the details of the newest entry of action.
func (e *env) auditDetails(action string) map[string]any {
	e.t.Helper()
	var raw []byte
	if err := e.st.Pool().QueryRow(ctx, `SELECT details FROM audit_log WHERE action = $1 ORDER BY id DESC LIMIT 1`, action).Scan(&raw); err != nil {
		e.t.Fatalf("no %s audit entry: %v", action, err)
	}
	var d map[string]any
	if err := json.Unmarshal(raw, &d); err != nil {
		e.t.Fatal(err)
	}
	return d
}

func TestAttachAndDetachChannels(t *testing.T) {
	e := newEnv(t, envOpts{})
	owner, mod := e.key(e.owner, e.a.ID), e.key(e.mod, e.a.ID)
	c := "/api/v1/communities/" + e.a.ID
	// The owner's Twitch account "1" is a connected broadcaster: the
	// channel is theirs, but first it sits in Beta, which they do not
	// administer.
	e.exec(`INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('1', 'u1', 'broadcaster', 'connected')`)
	e.exec(`INSERT INTO channels (platform, channel_id, community_id) VALUES ('twitch', '1', $1)`, e.b.ID)
	e.expect(e.do(owner, "POST", c+"/channels", `{"platform":"twitch","channel_id":"1"}`), http.StatusForbidden, "forbidden")
	e.expect(e.do(owner, "POST", c+"/channels", `{"platform":"twitch","channel_id":"999"}`), http.StatusForbidden, "forbidden")
	e.expect(e.do(owner, "POST", c+"/channels", `{"platform":"","channel_id":""}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(mod, "POST", c+"/channels", `{"platform":"twitch","channel_id":"1"}`), http.StatusForbidden, "forbidden")

	e.exec(`DELETE FROM channels WHERE platform = 'twitch' AND channel_id = '1'`)
	r := e.do(owner, "POST", c+"/channels", `{"platform":"twitch","channel_id":"1"}`)
	e.expect(r, http.StatusCreated, "")
	if ch := r.body["channel"].(map[string]any); ch["channel_id"] != "1" {
		t.Fatalf("attached %s", r.raw)
	}
	e.waitNotice(e.a.ID, 1)
	r = e.do(owner, "GET", c+"/channels", nil)
	if len(r.items()) != 1 {
		t.Fatalf("channels %s", r.raw)
	}
	e.expect(e.do(owner, "POST", c+"/channels", `{"platform":"twitch","channel_id":"1"}`), http.StatusConflict, "conflict")
	if d := e.auditDetails("channel.attach"); d["api_key"] == nil {
		t.Fatalf("attach audit lacks where it came from: %v", d)
	}

	before := e.notices(e.a.ID)
	e.expect(e.do(mod, "DELETE", c+"/channels/twitch/1", nil), http.StatusForbidden, "forbidden")
	e.expect(e.do(owner, "DELETE", c+"/channels/twitch/1", nil), http.StatusNoContent, "")
	e.waitNotice(e.a.ID, before+1)
	e.expect(e.do(owner, "DELETE", c+"/channels/twitch/1", nil), http.StatusNotFound, "not_found")

	// A Discord channel whose guild stays would come back: refused.
	e.exec(`INSERT INTO channels (platform, channel_id, server_id, community_id) VALUES ('discord', 'G', 'G', $1), ('discord', 'C', 'G', $1)`, e.a.ID)
	e.expect(e.do(owner, "DELETE", c+"/channels/discord/C", nil), http.StatusConflict, "server_attached")
}

func TestClaimProvisionalCommunity(t *testing.T) {
	e := newEnv(t, envOpts{})
	site := e.key(e.super, "")
	e.exec(`INSERT INTO twitch_accounts (user_id, login, kind, status) VALUES ('9', 'u9', 'broadcaster', 'connected')`)
	mine, err := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "9", Name: "u9"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := e.st.ResolveChannel(ctx, store.Channel{Platform: "twitch", ChannelID: "555", Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if !mine.Provisional || !theirs.Provisional {
		t.Fatal("resolved communities are not provisional")
	}
	e.expect(e.do(site, "POST", "/api/v1/communities/"+theirs.ID+"/claim", nil), http.StatusForbidden, "forbidden")
	r := e.do(site, "POST", "/api/v1/communities/"+mine.ID+"/claim", nil)
	e.expect(r, http.StatusOK, "")
	if r.body["provisional"] != false || r.body["role"] != "owner" {
		t.Fatalf("claimed %s", r.raw)
	}
	e.waitNotice(mine.ID, 1)
	role, err := e.st.MemberRole(ctx, mine.ID, e.super.ID)
	if err != nil || role != store.RoleOwner {
		t.Fatalf("claimer's role %q %v", role, err)
	}
	e.expect(e.do(site, "POST", "/api/v1/communities/"+mine.ID+"/claim", nil), http.StatusConflict, "conflict")
	// A community's key cannot claim another.
	e.expect(e.do(e.key(e.owner, e.a.ID), "POST", "/api/v1/communities/"+theirs.ID+"/claim", nil), http.StatusForbidden, "wrong_community")
}

func TestQuotes(t *testing.T) {
	e := newEnv(t, envOpts{})
	mod, read := e.key(e.mod, e.a.ID), e.key(e.mod, e.a.ID, store.ScopeCommunitiesRead)
	c := "/api/v1/communities/" + e.a.ID + "/quotes"
	for i, q := range []string{"one", "two", "three"} {
		r := e.do(mod, "POST", c, map[string]any{"text": "  " + q + " ", "author": "Ann"})
		e.expect(r, http.StatusCreated, "")
		if r.body["number"] != float64(i+1) || r.body["text"] != q {
			t.Fatalf("added %s", r.raw)
		}
	}
	e.expect(e.do(read, "POST", c, `{"text":"x"}`), http.StatusForbidden, "insufficient_scope")
	for _, bad := range []string{`{"text":""}`, `{"text":"a\nb"}`, `{"text":"ok","author":"` + strings.Repeat("a", 500) + `"}`,
		`{"text":"` + strings.Repeat("a", 5000) + `"}`} {
		e.expect(e.do(mod, "POST", c, bad), http.StatusUnprocessableEntity, "invalid")
	}
	if d := e.auditDetails("quote.add"); d["after"] == nil || d["api_key"] == nil {
		t.Fatalf("quote audit %v", d)
	}
	// Pages walk newest first, each quote once, even with one added between.
	r := e.do(read, "GET", c+"?limit=2", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 2 || r.items()[0].(map[string]any)["number"] != float64(3) {
		t.Fatalf("first page %s", r.raw)
	}
	e.expect(e.do(mod, "POST", c, `{"text":"four"}`), http.StatusCreated, "")
	r = e.do(read, "GET", c+"?limit=2&cursor="+url.QueryEscape(r.body["next_cursor"].(string)), nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 1 || r.items()[0].(map[string]any)["number"] != float64(1) || r.body["next_cursor"] != nil {
		t.Fatalf("second page %s", r.raw)
	}
	e.expect(e.do(mod, "DELETE", c+"/2", nil), http.StatusNoContent, "")
	e.expect(e.do(mod, "DELETE", c+"/2", nil), http.StatusNotFound, "not_found")
	e.expect(e.do(mod, "DELETE", c+"/zero", nil), http.StatusNotFound, "not_found")
	if d := e.auditDetails("quote.delete"); d["before"] == nil {
		t.Fatalf("delete audit %v", d)
	}
	_, total, err := e.st.Quotes(ctx, e.a.ID, 0, 10)
	if err != nil || total != 3 {
		t.Fatalf("%d quotes left, %v", total, err)
	}
}

func TestReputationLeaderboard(t *testing.T) {
	e := newEnv(t, envOpts{})
	key := e.key(e.mod, e.a.ID)
	c := "/api/v1/communities/" + e.a.ID + "/reputation"
	e.exec(`INSERT INTO reputation_scores (community_id, subject, total, display_name) VALUES
		($1, 'a', 10000, 'Ann'), ($1, 'b', 10000, 'Bob'), ($1, 'c', -30000, ''), ($1, 'd', 0, 'Dee')`, e.a.ID)
	r := e.do(key, "GET", c+"?n=3", nil)
	e.expect(r, http.StatusOK, "")
	items := r.items()
	if len(items) != 3 {
		t.Fatalf("leaders %s", r.raw)
	}
	first, second := items[0].(map[string]any), items[1].(map[string]any)
	if first["name"] != "Ann" || first["rank"] != float64(1) || second["rank"] != float64(1) || first["tier"] == "" {
		t.Fatalf("leaders %s", r.raw)
	}
	if third := items[2].(map[string]any); third["rank"] != float64(3) {
		t.Fatalf("third %s", r.raw)
	}
	r = e.do(key, "GET", c, nil)
	if len(r.items()) != 4 || r.items()[3].(map[string]any)["name"] != "c" {
		t.Fatalf("all leaders %s", r.raw)
	}
	for _, n := range []string{"0", "51", "x"} {
		e.expect(e.do(key, "GET", c+"?n="+n, nil), http.StatusBadRequest, "bad_n")
	}
}

func TestBrowserSources(t *testing.T) {
	e := newEnv(t, envOpts{})
	owner, mod := e.key(e.owner, e.a.ID), e.key(e.mod, e.a.ID)
	c := "/api/v1/communities/" + e.a.ID + "/browser-sources"
	r := e.do(mod, "GET", c, nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != len(store.OverlaySourceNames) || strings.Contains(r.raw, "token") {
		t.Fatalf("sources %s", r.raw)
	}
	e.expect(e.do(mod, "POST", c+"/alerts/rotate", nil), http.StatusForbidden, "forbidden")
	e.expect(e.do(owner, "POST", c+"/nope/rotate", nil), http.StatusNotFound, "not_found")
	r = e.do(owner, "POST", c+"/alerts/rotate", nil)
	e.expect(r, http.StatusOK, "")
	u, err := url.Parse(r.body["url"].(string))
	if err != nil || u.Path != "/overlay/alerts" || u.Query().Get("t") == "" {
		t.Fatalf("rotated %s", r.raw)
	}
	first := u.Query().Get("t")
	if o, err := e.st.OverlayByToken(ctx, first, e.clock.Now()); err != nil || o.Source != "alerts" || o.CommunityID != e.a.ID {
		t.Fatalf("new URL does not work: %+v %v", o, err)
	}
	r = e.do(owner, "POST", c+"/alerts/rotate", nil)
	e.expect(r, http.StatusOK, "")
	if r.body["old_valid_until"] == nil {
		t.Fatalf("second rotation shows no grace: %s", r.raw)
	}
	if _, err := e.st.OverlayByToken(ctx, first, e.clock.Now().Add(10*time.Minute)); err == nil {
		t.Fatal("the old URL outlives its grace")
	}
	r = e.do(mod, "GET", c, nil)
	if strings.Contains(r.raw, first) || !strings.Contains(r.raw, `"has_url":true`) {
		t.Fatalf("list after rotation %s", r.raw)
	}

	e.expect(e.do(owner, "PUT", c+"/alerts/look", `{"theme":"neon","font_size":20,"width":800,"height":200}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(owner, "PUT", c+"/alerts/look", `{"theme":"dark","font_size":2,"width":800,"height":200}`), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(mod, "PUT", c+"/alerts/look", `{"theme":"dark","font_size":20,"width":800,"height":200}`), http.StatusForbidden, "forbidden")
	r = e.do(owner, "PUT", c+"/ticker/look", `{"theme":"dark","font_size":20,"width":640,"height":100}`)
	e.expect(r, http.StatusOK, "")
	if l := r.body["look"].(map[string]any); l["theme"] != "dark" || l["width"] != float64(640) {
		t.Fatalf("look %s", r.raw)
	}
}

func secretManifest() schemas.Manifest {
	return schemas.Manifest{Name: "vault", Version: "1.0.0",
		Settings: json.RawMessage(`{"type":"object","properties":{"api_key_secret":{"type":"string"},"model":{"type":"string"}}}`)}
}

func TestModuleSecrets(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.st.UpsertManifest(ctx, secretManifest(), true); err != nil {
		t.Fatal(err)
	}
	owner, mod := e.key(e.owner, e.a.ID), e.key(e.mod, e.a.ID)
	c := "/api/v1/communities/" + e.a.ID + "/modules/vault"
	e.expect(e.do(owner, "PUT", c+"/settings", `{"model":"m1"}`), http.StatusOK, "")
	before := e.notices(e.a.ID)
	e.expect(e.do(mod, "PUT", c+"/secrets/api_key_secret", `{"value":"sk-123"}`), http.StatusForbidden, "forbidden")
	e.expect(e.do(owner, "PUT", c+"/secrets/model", `{"value":"sk-123"}`), http.StatusNotFound, "not_found")
	e.expect(e.do(owner, "PUT", "/api/v1/communities/"+e.a.ID+"/modules/nope/secrets/api_key_secret", `{"value":"x"}`), http.StatusNotFound, "not_found")
	e.expect(e.do(owner, "PUT", c+"/secrets/api_key_secret", `{"value":"  "}`), http.StatusUnprocessableEntity, "invalid")
	r := e.do(owner, "PUT", c+"/secrets/api_key_secret", `{"value":"sk-123"}`)
	e.expect(r, http.StatusNoContent, "")
	if strings.Contains(r.raw, "sk-123") {
		t.Fatal("the secret came back")
	}
	e.waitNotice(e.a.ID, before+1)
	got, err := e.st.Secret(ctx, e.a.ID, "vault.api_key")
	if err != nil || string(got) != "sk-123" {
		t.Fatalf("stored %q %v", got, err)
	}
	r = e.do(owner, "GET", "/api/v1/communities/"+e.a.ID+"/modules", nil)
	if strings.Contains(r.raw, "sk-123") || !strings.Contains(r.raw, `"api_key_secret":"vault.api_key"`) || !strings.Contains(r.raw, `"model":"m1"`) {
		t.Fatalf("settings after secret %s", r.raw)
	}
	var leaked int
	if err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE details::text LIKE '%sk-123%'`).Scan(&leaked); err != nil || leaked != 0 {
		t.Fatalf("the secret is in %d audit entries (%v)", leaked, err)
	}
	if !has(e.actions(e.a.ID), "module.secret.set") {
		t.Fatalf("no secret audit: %v", e.actions(e.a.ID))
	}
	e.expect(e.do(owner, "DELETE", c+"/secrets/api_key_secret", nil), http.StatusNoContent, "")
	if _, err := e.st.Secret(ctx, e.a.ID, "vault.api_key"); err == nil {
		t.Fatal("the secret stayed")
	}
	r = e.do(owner, "GET", "/api/v1/communities/"+e.a.ID+"/modules", nil)
	if strings.Contains(r.raw, `"api_key_secret":"vault.api_key"`) || !strings.Contains(r.raw, `"model":"m1"`) {
		t.Fatalf("settings still name the secret: %s", r.raw)
	}
	if !has(e.actions(e.a.ID), "module.secret.remove") {
		t.Fatal("no removal audit")
	}
}

func TestSiteAdministration(t *testing.T) {
	e := newEnv(t, envOpts{})
	site := e.key(e.super, "")
	// Only a super-admin's site-wide key: not their community key, not
	// someone else's.
	e.expect(e.do(e.key(e.super, e.b.ID), "GET", "/api/v1/admin/users", nil), http.StatusForbidden, "forbidden")
	e.expect(e.do(e.key(e.owner, e.a.ID), "GET", "/api/v1/admin/users", nil), http.StatusForbidden, "forbidden")
	r := e.do(site, "GET", "/api/v1/admin/users", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 3 {
		t.Fatalf("users %s", r.raw)
	}
	r = e.do(site, "GET", "/api/v1/admin/users?limit=2", nil)
	if len(r.items()) != 2 || r.body["next_cursor"] == nil {
		t.Fatalf("users page %s", r.raw)
	}

	u := "/api/v1/admin/users/"
	e.expect(e.do(site, "PUT", u+e.super.ID+"/super-admin", `{"value":false}`), http.StatusConflict, "last_super_admin")
	e.expect(e.do(site, "PUT", u+e.super.ID+"/disabled", `{"value":true}`), http.StatusConflict, "last_super_admin")
	e.expect(e.do(site, "PUT", u+"not-a-user/disabled", `{"value":true}`), http.StatusNotFound, "not_found")
	e.expect(e.do(site, "PUT", u+"00000000-0000-0000-0000-000000000000/disabled", `{"value":true}`), http.StatusNotFound, "not_found")
	e.expect(e.do(site, "PUT", u+e.owner.ID+"/disabled", `{}`), http.StatusUnprocessableEntity, "invalid")
	r = e.do(site, "PUT", u+e.owner.ID+"/super-admin", `{"value":true}`)
	e.expect(r, http.StatusOK, "")
	if r.body["super_admin"] != true {
		t.Fatalf("promoted %s", r.raw)
	}
	ownerKey := e.key(e.owner, e.a.ID)
	e.expect(e.do(ownerKey, "GET", "/api/v1/communities/"+e.a.ID, nil), http.StatusOK, "")
	r = e.do(site, "PUT", u+e.owner.ID+"/disabled", `{"value":true}`)
	e.expect(r, http.StatusOK, "")
	if r.body["disabled"] != true {
		t.Fatalf("disabled %s", r.raw)
	}
	e.expect(e.do(ownerKey, "GET", "/api/v1/communities/"+e.a.ID, nil), http.StatusUnauthorized, "invalid_key")
	e.expect(e.do(site, "PUT", u+e.owner.ID+"/disabled", `{"value":false}`), http.StatusOK, "")
	e.expect(e.do(ownerKey, "GET", "/api/v1/communities/"+e.a.ID, nil), http.StatusOK, "")

	// The site audit, filtered and paged.
	r = e.do(site, "GET", "/api/v1/admin/audit?action=user.&limit=1", nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 1 || r.body["next_cursor"] == nil {
		t.Fatalf("site audit %s", r.raw)
	}
	entry := r.items()[0].(map[string]any)
	if !strings.HasPrefix(entry["action"].(string), "user.") {
		t.Fatalf("filter ignored: %s", r.raw)
	}
	seen := map[float64]bool{entry["id"].(float64): true}
	r = e.do(site, "GET", "/api/v1/admin/audit?action=user.&limit=1&cursor="+url.QueryEscape(r.body["next_cursor"].(string)), nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 1 || seen[r.items()[0].(map[string]any)["id"].(float64)] {
		t.Fatalf("second page %s", r.raw)
	}
	r = e.do(site, "GET", "/api/v1/admin/audit?actor=nobody", nil)
	if len(r.items()) != 0 {
		t.Fatalf("actor filter %s", r.raw)
	}
	e.expect(e.do(site, "GET", "/api/v1/admin/audit?cursor=!!", nil), http.StatusBadRequest, "bad_cursor")
}

func externalBody(name, kind, u string) map[string]any {
	b := map[string]any{"kind": kind, "manifest": map[string]any{"name": name, "version": "1.0.0",
		"commands": []any{map[string]any{"name": name + "cmd", "permission": "everyone"}}}}
	if u != "" {
		b["url"] = u
	}
	return b
}

func TestExternalModules(t *testing.T) {
	e := newEnv(t, envOpts{})
	site := e.key(e.super, "")
	x := "/api/v1/admin/external"
	r := e.do(site, "POST", x, externalBody("nmod", "nats", ""))
	e.expect(r, http.StatusCreated, "")
	if r.body["secret"] != nil || r.body["kind"] != "nats" {
		t.Fatalf("nats module %s", r.raw)
	}
	natstest.Eventually(t, 5*time.Second, "registry notice", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.notice[schemas.ControlRegistry] >= 1
	})
	r = e.do(site, "POST", x, externalBody("wmod", "webhook", "https://example.com/hook"))
	e.expect(r, http.StatusCreated, "")
	secret, _ := r.body["secret"].(string)
	if len(secret) != 64 {
		t.Fatalf("webhook module %s", r.raw)
	}
	for name, body := range map[string]any{
		"http":          externalBody("h", "webhook", "http://example.com/hook"),
		"nats with url": externalBody("n2", "nats", "https://example.com"),
		"builtin name":  externalBody("alias", "nats", ""),
		"no kind":       externalBody("k", "", ""),
		"default on":    map[string]any{"kind": "nats", "manifest": map[string]any{"name": "on", "version": "1.0.0", "default_enabled": true}},
		"unknown field": map[string]any{"kind": "nats", "manifest": map[string]any{"name": "uf", "version": "1.0.0", "colour": "red"}},
		"no manifest":   map[string]any{"kind": "nats"},
	} {
		r := e.do(site, "POST", x, body)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: %d %s", name, r.status, r.raw)
		}
	}
	r = e.do(site, "GET", x, nil)
	e.expect(r, http.StatusOK, "")
	if len(r.items()) != 2 || strings.Contains(r.raw, secret) {
		t.Fatalf("list %s", r.raw)
	}
	// This portal has no nats-config directory.
	e.expect(e.do(site, "POST", x+"/nmod/creds", nil), http.StatusConflict, "no_nats_keys")
	e.expect(e.do(site, "POST", x+"/wmod/creds", nil), http.StatusUnprocessableEntity, "invalid")
	e.expect(e.do(site, "POST", x+"/nope/creds", nil), http.StatusNotFound, "not_found")
	e.expect(e.do(site, "DELETE", x+"/wmod", nil), http.StatusNoContent, "")
	e.expect(e.do(site, "DELETE", x+"/wmod", nil), http.StatusNotFound, "not_found")
	if !has(e.actions(""), "external.add") || !has(e.actions(""), "external.remove") {
		t.Fatalf("external changes not audited: %v", e.actions(""))
	}
	// A community key, even a super-admin's, manages no modules of the site.
	e.expect(e.do(e.key(e.super, e.b.ID), "GET", x, nil), http.StatusForbidden, "forbidden")
}
