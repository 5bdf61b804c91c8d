package portal_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/portal"
)

func TestHTTPSCookiesAreSecureHostCookies(t *testing.T) {
	p, err := portal.New(portal.Config{Store: storetest.New(t), PublicURL: "https://bot.example", DevSignIn: true, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "https://bot.example/portal/signin", nil)
	req.RemoteAddr = "127.0.0.1:5000"
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	pre := rec.Result().Cookies()
	if len(pre) != 1 || pre[0].Name != "__Host-waddlebot_portal_pre" || !pre[0].Secure || !pre[0].HttpOnly || pre[0].Path != "/" {
		t.Fatalf("pre-session cookie %+v", pre)
	}
	token := csrfOf(t, rec.Body.String())

	req = httptest.NewRequest(http.MethodPost, "https://bot.example/portal/signin/dev", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://bot.example")
	req.RemoteAddr = "127.0.0.1:5000"
	req.AddCookie(pre[0])
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("dev sign-in: %d %s", rec.Code, rec.Body)
	}
	var session *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == "__Host-waddlebot_portal" {
			session = c
		}
	}
	if session == nil || !session.Secure || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" || session.Domain != "" {
		t.Fatalf("session cookie %+v", session)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}

	// From another machine there is no developer sign-in.
	req = httptest.NewRequest(http.MethodPost, "https://bot.example/portal/signin/dev", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre[0])
	rec = httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("remote dev sign-in: %d", rec.Code)
	}
}
