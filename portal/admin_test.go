package portal_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
)

func TestUsersPageIsForSuperAdmins(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.SuperAdmins = []string{"twitch:1"} })
	boss := e.signInTwitch("1", "boss")
	pleb := e.signInTwitch("2", "pleb")
	for _, u := range []string{"/portal/admin/users", "/portal/admin/audit"} {
		if status, _ := pleb.get(e.url + u); status != http.StatusForbidden {
			t.Fatalf("ordinary user on %s: %d", u, status)
		}
	}
	_, pp := pleb.get(e.url + "/portal/")
	if strings.Contains(pp, "/portal/admin/users") {
		t.Fatal("ordinary user offered the users page")
	}
	if status, _ := pleb.post(e.url+"/portal/admin/users/"+e.userOf("twitch", "2")+"/super", url.Values{"csrf": {csrfOf(t, pp)}, "value": {"on"}}); status != http.StatusForbidden {
		t.Fatalf("ordinary user grants themselves: %d", status)
	}
	if got := e.auditActions(""); strings.Count(strings.Join(got, ","), "permission.denied") != 3 {
		t.Fatalf("denials not audited site-wide: %v", got)
	}

	status, page := boss.get(e.url + "/portal/admin/users")
	if status != http.StatusOK || !strings.Contains(page, "twitch:2 (pleb)") || !strings.Contains(page, "BOSS <small>(you)</small>") ||
		strings.Count(page, " UTC</td>") != 2 {
		t.Fatalf("users page: %d\n%s", status, page)
	}
	token := csrfOf(t, page)
	boss1, pleb2 := e.userOf("twitch", "1"), e.userOf("twitch", "2")
	post := func(user, what, value string) int {
		t.Helper()
		status, _ := boss.post(e.url+"/portal/admin/users/"+user+"/"+what, url.Values{"csrf": {token}, "value": {value}})
		return status
	}

	// The last super-admin cannot go, by revoking or disabling.
	if s := post(boss1, "super", "off"); s != http.StatusConflict {
		t.Fatalf("revoke last super-admin: %d", s)
	}
	if s := post(boss1, "disabled", "on"); s != http.StatusConflict {
		t.Fatalf("disable last super-admin: %d", s)
	}
	if s := post(pleb2, "super", "maybe"); s != http.StatusBadRequest {
		t.Fatalf("bad value: %d", s)
	}
	if s := post("not-a-user", "super", "on"); s != http.StatusBadRequest {
		t.Fatalf("bad user: %d", s)
	}
	if s := post("00000000-0000-0000-0000-000000000000", "super", "on"); s != http.StatusNotFound {
		t.Fatalf("unknown user: %d", s)
	}
	if s := post(pleb2, "super", "on"); s != http.StatusOK {
		t.Fatalf("grant: %d", s)
	}
	if _, pp := pleb.get(e.url + "/portal/admin/users"); !strings.Contains(pp, "Users") {
		t.Fatal("granted super-admin cannot see the users page")
	}
	if s := post(pleb2, "super", "off"); s != http.StatusOK {
		t.Fatalf("revoke: %d", s)
	}

	// Disabling ends the user's session at once.
	if s := post(pleb2, "disabled", "on"); s != http.StatusOK {
		t.Fatalf("disable: %d", s)
	}
	pleb.stopAt = e.url + "/portal/signin"
	if status, loc := pleb.get(e.url + "/portal/"); status != http.StatusSeeOther || loc != "/portal/signin" {
		t.Fatalf("disabled user's session: %d %s", status, loc)
	}
	if s := post(pleb2, "disabled", "off"); s != http.StatusOK {
		t.Fatalf("enable: %d", s)
	}
	u, _ := e.st.PortalUser(ctx, pleb2)
	if u.Disabled || u.SuperAdmin {
		t.Fatalf("after enable %+v", u)
	}

	es, _, err := e.st.SiteAudit(ctx, store.AuditFilter{ActionPrefix: "user."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, en := range es {
		if en.Target != pleb2 || en.Actor != "portal:"+boss1 || en.Details["ip"] != "127.0.0.1" || en.CommunityID != "" {
			t.Fatalf("entry %+v", en)
		}
		got = append(got, fmt.Sprintf("%s %v>%v", en.Action, en.Details["before"], en.Details["after"]))
	}
	want := "user.disabled true>false,user.disabled false>true,user.super_admin true>false,user.super_admin false>true"
	if strings.Join(got, ",") != want {
		t.Fatalf("audit %v, want %s", got, want)
	}
}

var olderLink = regexp.MustCompile(`href="([^"]+)">Older</a>`)

func TestSiteAuditPagesAndFilters(t *testing.T) {
	e := newEnv(t, func(c *portal.Config) { c.SuperAdmins = []string{"twitch:1"} })
	boss := e.signInTwitch("1", "boss") // one portal.signin
	for i := range 150 {
		if err := e.st.Audit(ctx, nil, store.AuditEntry{Actor: fmt.Sprintf("portal:x%d", i%3), Action: "permission.denied", Target: fmt.Sprintf("t%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, page := boss.get(e.url + "/portal/admin/audit")
	if strings.Count(page, "<tr><td>") != 100 || !strings.Contains(page, "t149") || strings.Contains(page, "t049") {
		t.Fatalf("first page:\n%s", page)
	}
	m := olderLink.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no older link")
	}
	_, page = boss.get(e.url + html.UnescapeString(m[1]))
	if strings.Count(page, "<tr><td>") != 51 || !strings.Contains(page, "t000") || !strings.Contains(page, "portal.signin") ||
		olderLink.MatchString(page) || !strings.Contains(page, ">Newest</a>") {
		t.Fatalf("second page:\n%s", page)
	}

	tests := []struct {
		query string
		rows  int
	}{
		{"action=portal.", 1},
		{"action=permission.&actor=portal:x1", 50},
		{"actor=nobody", 0},
		{"action=" + url.QueryEscape("%"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			status, page := boss.get(e.url + "/portal/admin/audit?" + tt.query)
			if status != http.StatusOK || strings.Count(page, "<tr><td>") != tt.rows {
				t.Fatalf("%d, %d rows, want %d", status, strings.Count(page, "<tr><td>"), tt.rows)
			}
		})
	}
	if status, _ := boss.get(e.url + "/portal/admin/audit?before=x"); status != http.StatusBadRequest {
		t.Fatalf("bad page: %d", status)
	}
}
