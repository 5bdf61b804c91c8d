package portal_test

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
	"github.com/waddlebot/waddlebot/schemas"
)

const hookManifest = `{"name":"weather","version":"1.0.0","description":"Forecasts",
	"commands":[{"name":"weather","permission":"everyone"},{"name":"forecast","permission":"moderator"}]}`

// extEnv is a portal with a super-admin (twitch:1), an ordinary user
// (twitch:2) and a listener on wb.control.registry.
type extEnv struct {
	e           *env
	boss, pleb  *browser
	bt, pt      string // their CSRF tokens
	base        string
	mu          sync.Mutex
	registryMsg []string
}

func newExtEnv(t *testing.T, tune func(*portal.Config)) *extEnv {
	t.Helper()
	var conn *natsx.Conn
	x := &extEnv{}
	x.e = newEnv(t, func(c *portal.Config) {
		c.SuperAdmins = []string{"twitch:1"}
		conn = c.Conn
		if tune != nil {
			tune(c)
		}
	})
	sub, err := conn.NC.Subscribe(schemas.ControlRegistry, func(m *nats.Msg) {
		x.mu.Lock()
		x.registryMsg = append(x.registryMsg, string(m.Data))
		x.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := conn.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	x.base = x.e.url + "/portal/admin/external"
	x.boss = x.e.signInTwitch("1", "boss")
	x.pleb = x.e.signInTwitch("2", "pleb")
	_, page := x.boss.get(x.base)
	x.bt = csrfOf(t, page)
	_, page = x.pleb.get(x.e.url + "/portal/")
	x.pt = csrfOf(t, page)
	return x
}

// waitRegistry waits for the notices naming want, in order.
func (x *extEnv) waitRegistry(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		x.mu.Lock()
		got := slices.Clone(x.registryMsg)
		x.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry notices %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postMultipart sends the registration form as a browser does, with an
// optional manifest file.
func postMultipart(t *testing.T, b *browser, u string, fields map[string]string, file string) (int, http.Header, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if file != "" {
		fw, _ := mw.CreateFormFile("manifest_file", "manifest.json")
		_, _ = fw.Write([]byte(file))
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, u, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(out)
}

// postRaw posts an urlencoded form and keeps the response's headers.
func postRaw(t *testing.T, b *browser, u string, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	resp, err := b.c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

func TestExternalPageIsForSuperAdminsOnly(t *testing.T) {
	x := newExtEnv(t, nil)
	if _, page := x.pleb.get(x.e.url + "/portal/"); strings.Contains(page, "/portal/admin/external") {
		t.Fatal("ordinary user offered the external modules page")
	}
	if _, page := x.boss.get(x.e.url + "/portal/"); !strings.Contains(page, `href="/portal/admin/external"`) {
		t.Fatal("super-admin not offered the external modules page")
	}
	if err := x.e.st.AddExternalModule(ctx, "t", schemas.Manifest{Name: "bridge", Version: "1.0.0", External: true}, store.ExternalNATS, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := x.pleb.get(x.base); status != http.StatusForbidden {
		t.Fatalf("ordinary user sees the page: %d", status)
	}
	fields := map[string]string{"csrf": x.pt, "kind": "webhook", "url": "https://example.com/hook", "manifest": hookManifest}
	if status, _, _ := postMultipart(t, x.pleb, x.base, fields, ""); status != http.StatusForbidden {
		t.Fatalf("ordinary user registers: %d", status)
	}
	for _, action := range []string{"creds", "remove"} {
		if status, _ := x.pleb.post(x.base+"/bridge/"+action, url.Values{"csrf": {x.pt}, "confirm": {"bridge"}}); status != http.StatusForbidden {
			t.Fatalf("ordinary user %s: %d", action, status)
		}
	}
	if got := x.e.auditActions(""); strings.Count(strings.Join(got, ","), "permission.denied") != 4 {
		t.Fatalf("denials not audited: %v", got)
	}
	if mods, _ := x.e.st.ExternalModules(ctx); len(mods) != 1 || mods[0].Manifest.Name != "bridge" {
		t.Fatalf("modules changed by an ordinary user: %+v", mods)
	}
}

func TestExternalFormsNeedCSRF(t *testing.T) {
	x := newExtEnv(t, func(c *portal.Config) { c.NATSAuthDir = t.TempDir() })
	if err := x.e.st.AddExternalModule(ctx, "t", schemas.Manifest{Name: "bridge", Version: "1.0.0", External: true}, store.ExternalNATS, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{"missing": "", "wrong": "not-the-token"} {
		fields := map[string]string{"kind": "nats", "manifest": `{"name":"other","version":"1.0.0"}`}
		if token != "" {
			fields["csrf"] = token
		}
		if status, _, _ := postMultipart(t, x.boss, x.base, fields, ""); status != http.StatusForbidden {
			t.Fatalf("%s token, register: %d", name, status)
		}
		for _, action := range []string{"creds", "remove"} {
			status, h, _ := postRaw(t, x.boss, x.base+"/bridge/"+action, url.Values{"csrf": {token}, "confirm": {"bridge"}})
			if status != http.StatusForbidden || strings.Contains(h.Get("Content-Disposition"), "attachment") {
				t.Fatalf("%s token, %s: %d %v", name, action, status, h)
			}
		}
	}
	// Another site's form carrying a stolen token is refused too.
	if status, _ := x.boss.post(x.base+"/bridge/remove", url.Values{"csrf": {x.bt}, "confirm": {"bridge"}}, "Origin", "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("cross-origin remove: %d", status)
	}
	if mods, _ := x.e.st.ExternalModules(ctx); len(mods) != 1 {
		t.Fatalf("modules changed without a token: %+v", mods)
	}
	if got := x.e.auditActions(""); strings.Count(strings.Join(got, ","), "csrf.refused") != 7 {
		t.Fatalf("refusals not audited: %v", got)
	}
}

func TestExternalManifestErrorsShown(t *testing.T) {
	x := newExtEnv(t, nil)
	cases := []struct {
		name, kind, url, manifest string
		status                    int
		want                      string
	}{
		{"empty", "nats", "", "", http.StatusBadRequest, "paste the module&#39;s manifest"},
		{"not JSON", "nats", "", `{"name":`, http.StatusBadRequest, "not valid JSON"},
		{"unknown field", "nats", "", `{"name":"x","version":"1.0.0","comands":[]}`, http.StatusBadRequest, "unknown field"},
		{"trailing", "nats", "", `{"name":"x","version":"1.0.0"} {}`, http.StatusBadRequest, "after its closing brace"},
		{"bad name", "nats", "", `{"name":"Bad Name","version":"1.0.0"}`, http.StatusBadRequest, "must match"},
		{"bad version", "nats", "", `{"name":"x","version":"one"}`, http.StatusBadRequest, "not MAJOR.MINOR.PATCH"},
		{"bad permission", "nats", "", `{"name":"x","version":"1.0.0","commands":[{"name":"x","permission":"god"}]}`, http.StatusBadRequest, "permission"},
		{"built-in name", "nats", "", `{"name":"core","version":"9.0.0"}`, http.StatusBadRequest, "built-in module"},
		{"on by default", "nats", "", `{"name":"x","version":"1.0.0","default_enabled":true}`, http.StatusBadRequest, "off until a community enables them"},
		{"no kind", "", "", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "nats or webhook"},
		{"nats with URL", "nats", "https://example.com", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "has no URL"},
		{"webhook without URL", "webhook", "", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "must be an absolute https"},
		{"webhook over http", "webhook", "http://example.com/hook", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "must use https"},
		{"loopback http outside dev", "webhook", "http://127.0.0.1:9/hook", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "must use https"},
		{"webhook with credentials", "webhook", "https://u:p@example.com/hook", `{"name":"x","version":"1.0.0"}`, http.StatusBadRequest, "without credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": c.kind, "url": c.url, "manifest": c.manifest}, "")
			if status != c.status || !strings.Contains(page, c.want) || !strings.Contains(page, `role="alert"`) {
				t.Fatalf("%d, want %d with %q:\n%s", status, c.status, c.want, page)
			}
			// What was typed comes back, so nothing is lost.
			if c.manifest != "" && !strings.Contains(html.UnescapeString(page), c.manifest) {
				t.Fatalf("manifest not kept:\n%s", page)
			}
			if c.url != "" && !strings.Contains(page, html.EscapeString(c.url)) {
				t.Fatalf("URL not kept:\n%s", page)
			}
		})
	}
	if mods, _ := x.e.st.ExternalModules(ctx); len(mods) != 0 {
		t.Fatalf("refused manifests registered: %+v", mods)
	}
	// A name the catalogue holds as built in is refused by the store too.
	if _, err := x.e.st.UpsertManifest(ctx, schemas.Manifest{Name: "homegrown", Version: "1.0.0"}, true); err != nil {
		t.Fatal(err)
	}
	status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "nats", "manifest": `{"name":"homegrown","version":"2.0.0"}`}, "")
	if status != http.StatusConflict || !strings.Contains(page, "homegrown is a built-in module") {
		t.Fatalf("catalogue built-in: %d\n%s", status, page)
	}
}

func TestExternalManifestTooLarge(t *testing.T) {
	x := newExtEnv(t, nil)
	big := `{"name":"x","version":"1.0.0","description":"` + strings.Repeat("a", 400<<10) + `"}`
	status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "nats"}, big)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(page, "KiB") {
		t.Fatalf("oversized upload: %d\n%s", status, page)
	}
}

var secretRe = regexp.MustCompile(`<code id="secret">([0-9a-f]+)</code>`)

func TestExternalWebhookSecretShownOnce(t *testing.T) {
	x := newExtEnv(t, nil)
	status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "webhook", "url": "https://hooks.example.com/wb"}, hookManifest)
	m := secretRe.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil || !strings.Contains(page, "Registered weather") {
		t.Fatalf("register webhook: %d\n%s", status, page)
	}
	secret := m[1]
	stored, err := x.e.st.Secret(ctx, store.SecretOwnerExternal, "weather")
	if err != nil || string(stored) != secret || len(secret) != 64 {
		t.Fatalf("stored secret %q %v, shown %q", stored, err, secret)
	}
	x.waitRegistry(t, "weather")

	_, page = x.boss.get(x.base)
	if strings.Contains(page, secret) || !strings.Contains(page, "https://hooks.example.com/wb") ||
		!strings.Contains(page, "<code>weather</code> <code>forecast</code>") || !strings.Contains(page, "<td>webhook</td>") {
		t.Fatalf("list after registering:\n%s", page)
	}
	if strings.Contains(page, "/weather/creds") {
		t.Fatal("webhook module offered NATS credentials")
	}
	if status, _ := x.boss.post(x.base+"/weather/creds", url.Values{"csrf": {x.bt}}); status != http.StatusBadRequest {
		t.Fatalf("mint for a webhook module: %d", status)
	}

	es, _, err := x.e.st.SiteAudit(ctx, store.AuditFilter{ActionPrefix: "external."})
	if err != nil || len(es) != 1 || es[0].Action != "external.add" || es[0].Target != "weather" ||
		es[0].Actor != "portal:"+x.e.userOf("twitch", "1") {
		t.Fatalf("audit %+v %v", es, err)
	}
	doc, _ := json.Marshal(es[0].Details)
	if strings.Contains(string(doc), secret) {
		t.Fatalf("secret in the audit log: %s", doc)
	}

	// Registering again rotates the secret: the old one stops verifying.
	_, _, page = postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "webhook", "url": "https://hooks.example.com/wb2", "manifest": hookManifest}, "")
	m = secretRe.FindStringSubmatch(page)
	if m == nil || m[1] == secret {
		t.Fatalf("re-registering did not make a new secret:\n%s", page)
	}
}

func TestExternalWebhookHTTPOnlyToLoopbackInDev(t *testing.T) {
	x := newExtEnv(t, func(c *portal.Config) { c.DevSignIn = true })
	for u, want := range map[string]int{"http://127.0.0.1:8099/hook": http.StatusOK, "http://localhost/hook": http.StatusOK,
		"http://example.com/hook": http.StatusBadRequest, "ftp://127.0.0.1/hook": http.StatusBadRequest} {
		status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "webhook", "url": u, "manifest": hookManifest}, "")
		if status != want {
			t.Fatalf("%s: %d, want %d\n%s", u, status, want, page)
		}
	}
}

func TestExternalNATSCredsDownload(t *testing.T) {
	dir := t.TempDir()
	setup, err := natsauth.Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := newExtEnv(t, func(c *portal.Config) { c.NATSAuthDir = dir })
	status, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "nats"}, `{"name":"bridge","version":"0.1.0","commands":[{"name":"relay","permission":"everyone"}]}`)
	if status != http.StatusOK || !strings.Contains(page, "Registered bridge") || secretRe.MatchString(page) ||
		!strings.Contains(page, `action="/portal/admin/external/bridge/creds"`) {
		t.Fatalf("register nats module from a file: %d\n%s", status, page)
	}
	x.waitRegistry(t, "bridge")

	status, h, creds := postRaw(t, x.boss, x.base+"/bridge/creds", url.Values{"csrf": {x.bt}})
	if status != http.StatusOK {
		t.Fatalf("mint: %d\n%s", status, creds)
	}
	disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil || disp != "attachment" || params["filename"] != "bridge.creds" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("download headers %v", h)
	}
	token, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		t.Fatalf("creds JWT: %v\n%s", err, creds)
	}
	uc, err := jwt.DecodeUserClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string(uc.Sub.Allow); !slices.Equal(got, []string{"wb.ext.bridge.invoke"}) {
		t.Fatalf("subscribe allow %v", got)
	}
	if got := []string(uc.Pub.Allow); !slices.Equal(got, []string{"wb.result.bridge"}) {
		t.Fatalf("publish allow %v", got)
	}
	if len(uc.Sub.Deny) != 0 || len(uc.Pub.Deny) != 0 || uc.IssuerAccount != setup.AccountPub || uc.Issuer == setup.AccountPub {
		t.Fatalf("claims %+v", uc)
	}
	kp, err := nkeys.ParseDecoratedNKey(creds)
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := kp.PublicKey(); pub != uc.Subject {
		t.Fatalf("seed of %s, JWT of %s", pub, uc.Subject)
	}
	es, _, err := x.e.st.SiteAudit(ctx, store.AuditFilter{ActionPrefix: "external.mint"})
	if err != nil || len(es) != 1 || es[0].Target != "bridge" || es[0].Details["ip"] != "127.0.0.1" {
		t.Fatalf("mint audit %+v %v", es, err)
	}
	doc, _ := json.Marshal(es[0].Details)
	seed, _ := kp.Seed()
	if strings.Contains(string(doc), string(seed)) || strings.Contains(string(doc), token) {
		t.Fatalf("credentials in the audit log: %s", doc)
	}

	if status, _ := x.boss.post(x.base+"/nobody/creds", url.Values{"csrf": {x.bt}}); status != http.StatusNotFound {
		t.Fatalf("mint for an unknown module: %d", status)
	}
}

func TestExternalMintRefusedWithoutKeys(t *testing.T) {
	for name, dir := range map[string]func(t *testing.T) string{
		"no directory":   func(*testing.T) string { return "" },
		"directory bare": func(t *testing.T) string { return t.TempDir() },
	} {
		t.Run(name, func(t *testing.T) {
			d := dir(t)
			x := newExtEnv(t, func(c *portal.Config) { c.NATSAuthDir = d })
			if err := x.e.st.AddExternalModule(ctx, "t", schemas.Manifest{Name: "bridge", Version: "1.0.0", External: true}, store.ExternalNATS, "", nil, nil); err != nil {
				t.Fatal(err)
			}
			status, h, body := postRaw(t, x.boss, x.base+"/bridge/creds", url.Values{"csrf": {x.bt}})
			if status != http.StatusConflict || h.Get("Content-Disposition") != "" ||
				!strings.Contains(string(body), "nats-config") || !strings.Contains(string(body), `role="alert"`) {
				t.Fatalf("%d %v\n%s", status, h, body)
			}
			_, page := x.boss.get(x.base)
			if d == "" && (strings.Contains(page, "/bridge/creds") || !strings.Contains(page, "waddlebot external mint bridge")) {
				t.Fatalf("page offers minting without a directory:\n%s", page)
			}
		})
	}
}

func TestExternalRemoveNeedsConfirmation(t *testing.T) {
	x := newExtEnv(t, nil)
	if _, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "webhook", "url": "https://hooks.example.com/wb", "manifest": hookManifest}, ""); !strings.Contains(page, "Registered weather") {
		t.Fatalf("register:\n%s", page)
	}
	if status, page := x.boss.post(x.base+"/weather/remove", url.Values{"csrf": {x.bt}, "confirm": {"weath"}}); status != http.StatusBadRequest || !strings.Contains(page, "to confirm") {
		t.Fatalf("unconfirmed remove: %d\n%s", status, page)
	}
	if _, err := x.e.st.ExternalModule(ctx, "weather"); err != nil {
		t.Fatalf("removed without confirmation: %v", err)
	}
	x.boss.stopAt = x.base
	if status, _ := x.boss.post(x.base+"/weather/remove", url.Values{"csrf": {x.bt}, "confirm": {"weather"}}); status != http.StatusSeeOther {
		t.Fatalf("remove: %d", status)
	}
	if _, err := x.e.st.ExternalModule(ctx, "weather"); err == nil {
		t.Fatal("module still registered")
	}
	if _, err := x.e.st.Secret(ctx, store.SecretOwnerExternal, "weather"); err == nil {
		t.Fatal("secret kept after removal")
	}
	x.waitRegistry(t, "weather", "weather")
	if got := x.e.auditActions(""); !contains(got, "external.remove") {
		t.Fatalf("removal not audited: %v", got)
	}
	x.boss.stopAt = ""
	if _, page := x.boss.get(x.base); !strings.Contains(page, "No external modules are registered.") {
		t.Fatalf("list after removal:\n%s", page)
	}
	if status, _ := x.boss.post(x.base+"/weather/remove", url.Values{"csrf": {x.bt}, "confirm": {"weather"}}); status != http.StatusNotFound {
		t.Fatalf("remove twice: %d", status)
	}
}

// An external module registered here shows on a community's modules page
// as external, off, and an owner can turn it on there.
func TestExternalModuleOnCommunityModulesPage(t *testing.T) {
	x := newExtEnv(t, nil)
	if _, _, page := postMultipart(t, x.boss, x.base, map[string]string{"csrf": x.bt, "kind": "webhook", "url": "https://hooks.example.com/wb", "manifest": hookManifest}, ""); !strings.Contains(page, "Registered weather") {
		t.Fatalf("register:\n%s", page)
	}
	x.pleb.post(x.e.url+"/portal/communities", url.Values{"csrf": {x.pt}, "name": {"Pleb pond"}, "prefix": {"!"}, "time_zone": {"UTC"}})
	list, _ := x.e.st.CommunitiesOf(ctx, nobody, true)
	if len(list) != 1 {
		t.Fatalf("communities %+v", list)
	}
	base := x.e.url + "/portal/c/" + list[0].Community.ID
	_, page := x.pleb.get(base + "/modules")
	row := regexp.MustCompile(`(?s)<tr>\s*<td><a href="[^"]*/modules/weather">weather</a>.*?</tr>`).FindString(page)
	if !strings.Contains(row, "<td>external</td>") || !strings.Contains(row, "<td>off (default)</td>") {
		t.Fatalf("external module row %q in:\n%s", row, page)
	}
	if status, _ := x.pleb.post(base+"/modules/weather/enabled", url.Values{"csrf": {x.pt}, "enabled": {"true"}}); status != http.StatusOK {
		t.Fatalf("enable external module: %d", status)
	}
	choices, err := x.e.st.CommunityModules(ctx, list[0].Community.ID)
	if err != nil || !choices["weather"].Enabled {
		t.Fatalf("choice %+v %v", choices, err)
	}
}
