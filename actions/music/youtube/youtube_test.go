package youtube

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"PT4M13S", 4*time.Minute + 13*time.Second, true},
		{"PT1H2M", time.Hour + 2*time.Minute, true},
		{"PT45S", 45 * time.Second, true},
		{"P1DT2H", 26 * time.Hour, true},
		{"P0D", 0, true},
		{"P1W", 7 * 24 * time.Hour, true},
		{"", 0, false},
		{"4M13S", 0, false},
		{"PT4X", 0, false},
		{"PT4", 0, false},
		{"PTM", 0, false},
		{"P1H", 0, false},
		{"PT99999999999S", 0, false},
	} {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT4M13S", "P1DT2H", "P0D", "PT", "P"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && d < 0 {
			t.Fatalf("%q parsed to negative %v", s, d)
		}
	})
}
