package discord

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
		body   string
		want   rateLimit
	}{
		{name: "route limit with a fraction", header: map[string]string{"Retry-After": "2", "X-RateLimit-Scope": "user", "X-RateLimit-Bucket": "abc"},
			body: `{"message":"You are being rate limited.","retry_after":1.5,"global":false}`,
			want: rateLimit{RetryAfter: 1500 * time.Millisecond, Scope: "user", Bucket: "abc"}},
		{name: "global from the body", header: map[string]string{"Retry-After": "3"},
			body: `{"message":"You are being rate limited.","retry_after":2.25,"global":true}`,
			want: rateLimit{RetryAfter: 2250 * time.Millisecond, Global: true}},
		{name: "global from the header", header: map[string]string{"Retry-After": "3", "X-RateLimit-Global": "true"},
			body: `{"retry_after":3}`, want: rateLimit{RetryAfter: 3 * time.Second, Global: true}},
		{name: "global from the scope", header: map[string]string{"X-RateLimit-Scope": "global"},
			body: `{"retry_after":1}`, want: rateLimit{RetryAfter: time.Second, Global: true, Scope: "global"}},
		{name: "no body: the header", header: map[string]string{"Retry-After": "4"}, body: "<html>slow down</html>",
			want: rateLimit{RetryAfter: 4 * time.Second}},
		{name: "nothing: the minimum wait", body: ``, want: rateLimit{RetryAfter: minRateLimitWait}},
		{name: "negative", body: `{"retry_after":-5}`, want: rateLimit{RetryAfter: minRateLimitWait}},
		{name: "absurd", body: `{"retry_after":1e300}`, want: rateLimit{RetryAfter: maxRateLimitWait}},
		{name: "retry_after a string", header: map[string]string{"Retry-After": "1"}, body: `{"retry_after":"soon"}`,
			want: rateLimit{RetryAfter: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := parseRateLimit(h, []byte(tt.body)); got != tt.want {
				t.Fatalf("parseRateLimit = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseAPIError(t *testing.T) {
	e, ok := parseAPIError([]byte(`{"code":50013,"message":"Missing Permissions"}`))
	if !ok || e.Code != 50013 || e.Message != "Missing Permissions" {
		t.Fatalf("parseAPIError = %+v %v", e, ok)
	}
	if _, ok := parseAPIError([]byte("<html>Bad Gateway</html>")); ok {
		t.Fatal("an HTML page read as Discord's error")
	}
	if e, ok := parseAPIError([]byte(`{"code":1e40,"message":"x"}`)); !ok || e.Code != 0 {
		t.Fatalf("an out-of-range code gave %+v %v", e, ok)
	}
}

// FuzzParseRateLimit: whatever a 429 carries, the wait is within bounds
// and parsing does not panic.
func FuzzParseRateLimit(f *testing.F) {
	f.Add("1", "", `{"message":"You are being rate limited.","retry_after":0.5,"global":false}`)
	f.Add("3", "true", `{"retry_after":2.5,"global":true}`)
	f.Add("NaN", "", `{"retry_after":1e999}`)
	f.Add("-1", "TRUE", `{"code":"x","retry_after":"y"}`)
	f.Add("", "", `[`)
	f.Fuzz(func(t *testing.T, retryAfter, global, body string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		h.Set("X-RateLimit-Global", global)
		rl := parseRateLimit(h, []byte(body))
		if rl.RetryAfter < minRateLimitWait || rl.RetryAfter > maxRateLimitWait {
			t.Fatalf("wait %s out of [%s, %s] for Retry-After %q body %q", rl.RetryAfter, minRateLimitWait, maxRateLimitWait, retryAfter, body)
		}
		e, ok := parseAPIError([]byte(body))
		if ok && (e.Code < 0 || e.RetryAfter < 0) {
			t.Fatalf("parseAPIError(%q) = %+v", body, e)
		}
	})
}
