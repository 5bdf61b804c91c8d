package portal_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/store"
)

var secretOnPage = regexp.MustCompile(`<code id="secret">(wbk_[A-Za-z0-9_-]+)</code>`)
var revokeForm = regexp.MustCompile(`/portal/apikeys/([0-9a-f-]{36})/revoke`)

func apiGet(t *testing.T, base, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/communities", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAPIKeysPage(t *testing.T) {
	e := newEnv(t, nil)
	b := e.signInTwitch("700", "keyowner")
	u, err := e.st.SignInPortalUser(ctx, store.Identity{Platform: "twitch", PlatformUserID: "700"}, "", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.st.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "Keys"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := e.st.CreateOwnedCommunity(ctx, "test", u.ID, store.NewCommunity{Name: "Modded"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetMember(ctx, "test", other.ID, u.ID, store.RoleModerator, nil); err != nil {
		t.Fatal(err)
	}
	status, page := b.get(e.url + "/portal/apikeys")
	if status != http.StatusOK || !strings.Contains(page, "Make a key") || strings.Contains(page, "Site-wide") {
		t.Fatalf("%d\n%s", status, page)
	}
	csrf := csrfOf(t, page)
	form := func(community string, scopes ...string) url.Values {
		return url.Values{"csrf": {csrf}, "name": {"dash"}, "community": {community}, "days": {"30"}, "scope": scopes}
	}
	for name, f := range map[string]url.Values{
		"no scope":   form(c.ID),
		"bad scope":  form(c.ID, "root"),
		"site-wide":  form("", store.ScopeCommunitiesRead),
		"moderator":  form(other.ID, store.ScopeCommunitiesRead),
		"no csrf":    {"name": {"x"}, "community": {c.ID}, "days": {"1"}, "scope": {store.ScopeCommunitiesRead}},
		"long dated": {"csrf": {csrf}, "name": {"x"}, "community": {c.ID}, "days": {"9999"}, "scope": {store.ScopeCommunitiesRead}},
	} {
		status, page := b.post(e.url+"/portal/apikeys", f)
		if status < 400 || secretOnPage.MatchString(page) {
			t.Fatalf("%s: made a key (%d)", name, status)
		}
	}
	status, page = b.post(e.url+"/portal/apikeys", form(c.ID, store.ScopeCommunitiesRead))
	m := secretOnPage.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("%d\n%s", status, page)
	}
	secret := m[1]
	if got := apiGet(t, e.url, secret); got != http.StatusOK {
		t.Fatalf("API with the new key: %d", got)
	}
	// Shown once: the list has only the hint.
	_, page = b.get(e.url + "/portal/apikeys")
	if strings.Contains(page, secret) || !strings.Contains(page, secret[:10]) {
		t.Fatal("the list shows the secret, or not even its hint")
	}
	id := revokeForm.FindStringSubmatch(page)
	if id == nil {
		t.Fatalf("no revoke button:\n%s", page)
	}
	if status, _ := b.post(e.url+"/portal/apikeys/"+id[1]+"/revoke", url.Values{"csrf": {csrf}}); status != http.StatusOK && status != http.StatusSeeOther {
		t.Fatalf("revoke: %d", status)
	}
	if got := apiGet(t, e.url, secret); got != http.StatusUnauthorized {
		t.Fatalf("API with the revoked key: %d", got)
	}
	acts := e.auditActions(c.ID)
	if !contains(acts, "apikey.create") || !contains(acts, "apikey.revoke") {
		t.Fatalf("audit %v", acts)
	}
}
