package twitch_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/waddlebot/waddlebot/collectors/twitch"
)

func TestOperatorCheck(t *testing.T) {
	tests := []struct {
		name          string
		token         string
		allowLoopback bool
		remote        string
		url           string
		header        map[string]string
		want          bool
	}{
		{name: "right token in the query", token: "s3cret-token", remote: "203.0.113.9:4000", url: "/connect/twitch/bot?token=s3cret-token", want: true},
		{name: "right bearer token", token: "s3cret-token", remote: "203.0.113.9:4000", url: "/connect/twitch/status",
			header: map[string]string{"Authorization": "Bearer s3cret-token"}, want: true},
		{name: "wrong token", token: "s3cret-token", remote: "203.0.113.9:4000", url: "/connect/twitch/bot?token=guess"},
		{name: "no token configured, none given", remote: "203.0.113.9:4000", url: "/connect/twitch/bot"},
		{name: "no token configured, empty one given", remote: "203.0.113.9:4000", url: "/connect/twitch/bot?token="},
		{name: "loopback outside dev", token: "s3cret-token", remote: "127.0.0.1:4000", url: "/connect/twitch/bot"},
		{name: "loopback in dev", allowLoopback: true, remote: "127.0.0.1:4000", url: "/connect/twitch/bot", want: true},
		{name: "ipv6 loopback in dev", allowLoopback: true, remote: "[::1]:4000", url: "/connect/twitch/bot", want: true},
		{name: "proxied request in dev", allowLoopback: true, remote: "127.0.0.1:4000", url: "/connect/twitch/bot",
			header: map[string]string{"X-Forwarded-For": "198.51.100.7"}},
		{name: "remote in dev", allowLoopback: true, remote: "192.0.2.1:4000", url: "/connect/twitch/bot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if got := twitch.OperatorCheck(tt.token, tt.allowLoopback)(r); got != tt.want {
				t.Fatalf("OperatorCheck = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOperatorPagesRefuseStrangers: without the operator's token nobody
// can start connecting a bot account or read the account list, while a
// channel connect stays open to any streamer.
func TestOperatorPagesRefuseStrangers(t *testing.T) {
	e := newConnectEnv(t, false)
	stranger := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{
		"/connect/twitch/bot":    http.StatusForbidden,
		"/connect/twitch/status": http.StatusForbidden,
		"/connect/twitch":        http.StatusFound,
	} {
		req, _ := http.NewRequest(http.MethodGet, e.web.URL+path, nil)
		// The test server is on loopback: pose as a proxied visitor.
		req.Header.Set("X-Forwarded-For", "198.51.100.7")
		resp, err := stranger.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s as a stranger: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
