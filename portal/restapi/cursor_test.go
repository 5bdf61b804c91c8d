package restapi

import (
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, after := range []string{"a", "0b7c3c1e-8e1b-4b53-a8a4-7d4f8f1f9d3b", "twitch\x00chan", "123"} {
		got, err := decodeCursor(encodeCursor(after))
		if err != nil || got != after {
			t.Fatalf("%q came back as %q, %v", after, got, err)
		}
	}
}

func TestCursorRefusesWhatItDidNotMake(t *testing.T) {
	for name, c := range map[string]string{
		"not base64":    "%%%",
		"not JSON":      "bm90IGpzb24",
		"empty":         "e30",          // {}
		"unknown field": "eyJiIjoieCJ9", // {"b":"x"}
		"two values":    "eyJhIjoieCJ9e30",
		"too long":      string(make([]byte, maxCursor+1)),
	} {
		if _, err := decodeCursor(c); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}
	if got, err := decodeCursor(""); err != nil || got != "" {
		t.Fatalf("empty cursor: %q %v", got, err)
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add("")
	f.Add(encodeCursor("x"))
	f.Add("eyJhIjoieCJ9e30")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, s string) {
		after, err := decodeCursor(s)
		if err != nil {
			return
		}
		if s != "" && after == "" {
			t.Fatalf("%q decoded to an empty position", s)
		}
		if after != "" {
			back, err := decodeCursor(encodeCursor(after))
			if err != nil || back != after {
				t.Fatalf("%q: re-encoding %q gave %q, %v", s, after, back, err)
			}
		}
	})
}

func TestMatchPath(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"/api/v1/communities/{id}", "/api/v1/communities/x", true},
		{"/api/v1/communities/{id}", "/api/v1/communities/", false},
		{"/api/v1/communities/{id}", "/api/v1/communities/x/y", false},
		{"/api/v1/communities", "/api/v1/communities", true},
		{"/api/v1/communities", "/api/v1/other", false},
	} {
		if got := matchPath(c.pattern, c.path); got != c.want {
			t.Errorf("matchPath(%q, %q) = %v", c.pattern, c.path, got)
		}
	}
}
