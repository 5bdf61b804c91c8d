package collectors_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/waddlebot/waddlebot/collectors"
)

func TestStateCookie(t *testing.T) {
	rec := httptest.NewRecorder()
	collectors.SetStateCookie(rec, "wb_test_state", "s3cret", true)
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies = %+v", cookies)
	}
	c := cookies[0]
	if c.Name != "wb_test_state" || c.Value != "s3cret" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
		c.Path != "/connect/" || c.MaxAge != 600 || !c.Secure {
		t.Fatalf("cookie = %+v", c)
	}

	tests := []struct {
		name    string
		cookies []*http.Cookie
		state   string
		want    bool
	}{
		{name: "same browser", cookies: []*http.Cookie{c}, state: "s3cret", want: true},
		{name: "no cookie", state: "s3cret"},
		{name: "another state", cookies: []*http.Cookie{c}, state: "other"},
		{name: "another cookie's name", cookies: []*http.Cookie{{Name: "wb_other", Value: "s3cret"}}, state: "s3cret"},
		{name: "both empty", cookies: []*http.Cookie{{Name: "wb_test_state", Value: ""}}, state: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/connect/test/callback", nil)
			for _, c := range tt.cookies {
				r.AddCookie(c)
			}
			if got := collectors.CheckStateCookie(r, "wb_test_state", tt.state); got != tt.want {
				t.Fatalf("CheckStateCookie = %v, want %v", got, tt.want)
			}
		})
	}

	rec = httptest.NewRecorder()
	collectors.ClearStateCookie(rec, "wb_test_state", false)
	if cs := rec.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 || cs[0].Path != "/connect/" || cs[0].Secure {
		t.Fatalf("cleared cookie = %+v", cs)
	}
}
