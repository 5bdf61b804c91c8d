package spotify_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/spotify"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

var ctx = context.Background()

func TestStoreTokensRoundTrip(t *testing.T) {
	st := storetest.New(t)
	toks := spotify.StoreTokens{Store: st}
	const cid = "7a0c2a4e-2b7a-4d6e-9d6f-6d1f0c1f5a11"
	if _, err := toks.Load(ctx, cid); !errors.Is(err, music.ErrNotConnected) {
		t.Fatalf("no token: %v", err)
	}
	want := spotify.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Scope: spotify.Scopes}
	if err := toks.Save(ctx, cid, want); err != nil {
		t.Fatal(err)
	}
	got, err := toks.Load(ctx, cid)
	if err != nil || got != want {
		t.Fatalf("loaded %+v, %v", got, err)
	}
}

// TestConnectWithPKCE runs the authorization code flow against the fake:
// the consent page gets an S256 challenge and the exchange its verifier.
func TestConnectWithPKCE(t *testing.T) {
	fake := musictest.NewSpotify(t)
	c := &spotify.Client{APIURL: fake.URL, AccountsURL: fake.URL, ClientID: fake.ClientID, ClientSecret: fake.ClientSecret}
	verifier, challenge := spotify.NewPKCE()
	auth, err := url.Parse(c.AuthURL("st", challenge, "http://localhost/cb"))
	if err != nil {
		t.Fatal(err)
	}
	if q := auth.Query(); q.Get("scope") != spotify.Scopes || q.Get("code_challenge_method") != "S256" || q.Get("state") != "st" {
		t.Fatalf("authorize URL %s", auth)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(auth.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	back, _ := url.Parse(resp.Header.Get("Location"))
	code := back.Query().Get("code")
	if _, err := c.Exchange(ctx, code, "wrong-verifier", "http://localhost/cb"); !errors.Is(err, music.ErrUnauthorized) {
		t.Fatalf("a wrong verifier: %v", err)
	}
	// A fresh consent gives a code the right verifier redeems.
	resp, _ = noRedirect.Get(auth.String())
	resp.Body.Close()
	back, _ = url.Parse(resp.Header.Get("Location"))
	tok, err := c.Exchange(ctx, back.Query().Get("code"), verifier, "http://localhost/cb")
	access, _ := fake.Tokens()
	if err != nil || tok.AccessToken != access || !strings.Contains(tok.Scope, "user-modify-playback-state") || tok.Expiry.Before(time.Now()) {
		t.Fatalf("token %+v, %v", tok, err)
	}
}
