package portal_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/store"
)

var overlayURL = regexp.MustCompile(`/overlay/alerts\?t=([A-Za-z0-9_-]{40,})`)

func TestBrowserSourcesPage(t *testing.T) {
	e := newEnv(t, nil)
	owner := e.signInTwitch("1", "own")
	_, page := owner.get(e.url + "/portal/communities/new")
	token := csrfOf(t, page)
	owner.post(e.url+"/portal/communities", url.Values{"csrf": {token}, "name": {"Pond"}, "prefix": {"!"}, "time_zone": {"UTC"}})
	list, _ := e.st.CommunitiesOf(ctx, nobody, true)
	id := list[0].Community.ID
	base := e.url + "/portal/c/" + id + "/browser-sources"

	status, page := owner.get(base)
	if status != http.StatusOK || strings.Count(page, "none yet") != 4 || !strings.Contains(page, "Make URL") {
		t.Fatalf("%d: a fresh community has four sources without URLs:\n%s", status, page)
	}
	// The URL is shown once, on the answer to the rotation.
	status, page = owner.post(base+"/alerts/rotate", url.Values{"csrf": {token}})
	m := overlayURL.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil || !strings.Contains(page, e.url+"/overlay/alerts?t=") {
		t.Fatalf("%d: no new URL shown:\n%s", status, page)
	}
	first := m[1]
	if o, err := e.st.OverlayByToken(ctx, first, e.clock.Now()); err != nil || o.CommunityID != id || o.Source != "alerts" {
		t.Fatalf("the shown token opens %+v (%v)", o, err)
	}
	if _, again := owner.get(base); strings.Contains(again, first) || !strings.Contains(again, "Rotate URL") {
		t.Fatal("the secret URL is shown again on a later visit")
	}
	// Rotating keeps the first URL for the grace, then refuses it.
	_, page = owner.post(base+"/alerts/rotate", url.Values{"csrf": {token}})
	if m := overlayURL.FindStringSubmatch(page); m == nil || m[1] == first {
		t.Fatalf("rotation showed no new URL:\n%s", page)
	}
	if _, err := e.st.OverlayByToken(ctx, first, e.clock.Now()); err != nil {
		t.Fatalf("the old URL stopped at once: %v", err)
	}
	if _, err := e.st.OverlayByToken(ctx, first, e.clock.Now().Add(6*60e9)); err == nil {
		t.Fatal("the old URL still works after the grace")
	}

	cases := []struct {
		name  string
		form  url.Values
		want  int
		error string
	}{
		{"bad theme", url.Values{"theme": {"neon"}, "font_size": {"30"}, "width": {"800"}, "height": {"200"}}, http.StatusBadRequest, "theme"},
		{"not a number", url.Values{"theme": {"dark"}, "font_size": {"big"}, "width": {"800"}, "height": {"200"}}, http.StatusBadRequest, "font size must be a whole number"},
		{"too wide", url.Values{"theme": {"dark"}, "font_size": {"30"}, "width": {"99999"}, "height": {"200"}}, http.StatusBadRequest, "width"},
		{"good", url.Values{"theme": {"dark"}, "font_size": {"30"}, "width": {"1280"}, "height": {"240"}}, http.StatusOK, "Saved the look of ticker"},
	}
	for _, c := range cases {
		c.form.Set("csrf", token)
		status, page := owner.post(base+"/ticker/look", c.form)
		if status != c.want || !strings.Contains(page, c.error) {
			t.Errorf("%s: %d, want %d with %q:\n%s", c.name, status, c.want, c.error, page)
		}
	}
	srcs, _ := e.st.OverlaySources(ctx, id)
	if want := (store.OverlayLook{Theme: "dark", FontSize: 30, Width: 1280, Height: 240}); srcs[1].Look != want {
		t.Errorf("ticker look %+v, want %+v", srcs[1].Look, want)
	}
	actions := e.auditActions(id)
	if !contains(actions, "overlay.rotate") || !contains(actions, "overlay.look") {
		t.Errorf("audit %v lacks the rotations and the look", actions)
	}

	// A moderator sees the sources but neither makes URLs nor changes them.
	owner.post(e.url+"/portal/c/"+id+"/members", url.Values{"csrf": {token}, "platform": {"discord"}, "platform_user_id": {"88"}, "role": {"moderator"}})
	e.discord.nextUser("88", "mod")
	mod := e.browser()
	if status, _ := mod.get(e.url + "/portal/signin/discord"); status != http.StatusOK {
		t.Fatal("moderator sign-in")
	}
	status, mp := mod.get(base)
	if status != http.StatusOK || strings.Contains(mp, "Rotate URL") {
		t.Fatalf("%d: the moderator's page offers rotation:\n%s", status, mp)
	}
	if status, _ := mod.post(base+"/alerts/rotate", url.Values{"csrf": {csrfOf(t, mp)}}); status != http.StatusForbidden {
		t.Errorf("moderator rotates: %d", status)
	}
	if status, _ := owner.post(base+"/billboard/rotate", url.Values{"csrf": {token}}); status != http.StatusNotFound {
		t.Errorf("unknown source: %d", status)
	}
}
