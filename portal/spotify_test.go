package portal_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/setup"
	"github.com/waddlebot/waddlebot/internal/store"
)

func TestSpotifyConnectPage(t *testing.T) {
	fake := musictest.NewSpotify(t)
	t.Setenv("WADDLEBOT_SPOTIFY_CLIENT_ID", fake.ClientID)
	t.Setenv("WADDLEBOT_SPOTIFY_CLIENT_SECRET", fake.ClientSecret)
	t.Setenv("WADDLEBOT_SPOTIFY_ACCOUNTS_URL", fake.URL)
	t.Setenv("WADDLEBOT_SPOTIFY_API_URL", fake.URL)
	e := newEnv(t, nil)
	owner := e.signInTwitch("1", "own")
	_, page := owner.get(e.url + "/portal/communities/new")
	token := csrfOf(t, page)
	owner.post(e.url+"/portal/communities", url.Values{"csrf": {token}, "name": {"Pond"}, "prefix": {"!"}, "time_zone": {"UTC"}})
	list, _ := e.st.CommunitiesOf(ctx, nobody, true)
	id := list[0].Community.ID
	base := e.url + "/portal/c/" + id + "/spotify"

	status, page := owner.get(base)
	if status != http.StatusOK || !strings.Contains(page, "Spotify is not connected.") || !strings.Contains(page, "Premium") {
		t.Fatalf("%d:\n%s", status, page)
	}
	// A moderator may not connect the streamer's account.
	mod := e.signInTwitch("2", "moddy")
	if err := e.st.SetMember(ctx, "test", id, memberID(t, e, "2"), store.RoleModerator, nil); err != nil {
		t.Fatal(err)
	}
	if status, _ := mod.get(base); status != http.StatusForbidden {
		t.Fatalf("a moderator sees the Spotify page: %d", status)
	}
	// Without a CSRF token nothing starts.
	if status, _ := owner.post(base+"/connect", url.Values{}); status != http.StatusForbidden {
		t.Fatalf("connect without CSRF: %d", status)
	}
	// Consent at the fake comes back to the callback: the token is kept, encrypted.
	status, page = owner.post(base+"/connect", url.Values{"csrf": {token}})
	if status != http.StatusOK || !strings.Contains(page, "Spotify is connected.") {
		t.Fatalf("%d after consent:\n%s", status, page)
	}
	tok, err := setup.Spotify(setup.EnvConfig(), e.st).Tokens.Load(ctx, id)
	access, refresh := fake.Tokens()
	if err != nil || tok.AccessToken != access || tok.RefreshToken != "" && tok.RefreshToken != refresh || tok.Expiry.Before(time.Now()) {
		t.Fatalf("kept %+v (%v), fake has %s", tok, err, access)
	}
	var raw string
	if err := e.st.Pool().QueryRow(ctx, `SELECT encode(ciphertext, 'escape') FROM secrets WHERE owner = $1`, "community:"+id).Scan(&raw); err != nil || strings.Contains(raw, access) {
		t.Fatalf("the token is not encrypted (%v)", err)
	}
	// The callback's state is good once.
	if status, _ := owner.get(e.url + "/portal/spotify/callback?code=x&state=replayed"); status != http.StatusBadRequest {
		t.Fatalf("a forged state: %d", status)
	}
	status, page = owner.post(base+"/disconnect", url.Values{"csrf": {token}})
	if status != http.StatusOK || !strings.Contains(page, "Spotify is disconnected.") {
		t.Fatalf("%d after disconnect:\n%s", status, page)
	}
	actions := e.auditActions(id)
	if !contains(actions, "music.spotify_connected") || !contains(actions, "music.spotify_disconnected") {
		t.Fatalf("audit %v", actions)
	}
}

func memberID(t *testing.T, e *env, twitchID string) string {
	t.Helper()
	var id string
	if err := e.st.Pool().QueryRow(ctx, `SELECT user_id FROM portal_identities WHERE platform = 'twitch' AND platform_user_id = $1`, twitchID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}
