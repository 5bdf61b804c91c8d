package discord

import (
	"strings"
	"testing"
)

func FuzzParseMemberName(f *testing.F) {
	for _, s := range []string{"ada", "@ada", "<@210000000000000011>", "<@!210000000000000011>", "<@&1>",
		"210000000000000011", "old#1234", " @ spaced ", "<@>", "<@abc>", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, name := parseMemberName(s)
		if id != "" && !isSnowflake(id) {
			t.Fatalf("id %q from %q is not a snowflake", id, s)
		}
		if id == "" && name != "" && strings.HasPrefix(strings.TrimSpace(s), "<@") && strings.HasSuffix(strings.TrimSpace(s), ">") {
			t.Fatalf("a mention %q read as name %q", s, name)
		}
	})
}

func TestParseMemberName(t *testing.T) {
	tests := []struct{ in, id, name string }{
		{"ada", "", "ada"},
		{" @Ada ", "", "Ada"},
		{"<@210000000000000011>", "210000000000000011", ""},
		{"<@!210000000000000011>", "210000000000000011", ""},
		{"<@&210000000000000011>", "", ""},
		{"210000000000000011", "210000000000000011", "210000000000000011"},
		{"old#1234", "", "old"},
		{"12345", "", "12345"},
	}
	for _, tt := range tests {
		if id, name := parseMemberName(tt.in); id != tt.id || name != tt.name {
			t.Errorf("parseMemberName(%q) = %q, %q, want %q, %q", tt.in, id, name, tt.id, tt.name)
		}
	}
}
