package router

import (
	"testing"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestExpand(t *testing.T) {
	ev := &schemas.Event{Channel: schemas.Channel{ID: "c1", Name: "waddle"}, User: schemas.User{Login: "alice", DisplayName: "Alice"}}
	typed := Command{Name: "hug", Args: []string{"bob", "a lot"}, ArgText: `bob "a lot"`}
	none := Command{Name: "hug"}
	tests := []struct {
		template string
		typed    Command
		want     string
		count    bool
	}{
		{"so {1}", typed, "so bob", false},
		{"so {1|nobody}", none, "so nobody", false},
		{"so {3|nobody}", typed, "so nobody", false},
		{"say {user} hugs {1} {2} in {channel}", typed, "say Alice hugs bob a lot in waddle", false},
		{"say {args}", typed, `say bob "a lot"`, false},
		{"say {args|nothing}", none, "say nothing", false},
		{"say {{ {unknown} {1", typed, "say {{ {unknown} {1", false},
		{"say run {count}", typed, "say run " + countMark, true},
		{"#weather {1|berlin}", none, "#weather berlin", false},
	}
	for _, tt := range tests {
		got := Expand(tt.template, ev, tt.typed)
		if got.Text != tt.want || got.HasCount != tt.count {
			t.Errorf("Expand(%q) = %q (count %v), want %q (%v)", tt.template, got.Text, got.HasCount, tt.want, tt.count)
		}
	}
	c, ok := parseExpansion("#weather berlin")
	if !ok || c.Prefix != "#" || c.Name != "weather" {
		t.Fatalf("external expansion parsed as %+v", c)
	}
	c, ok = parseExpansion("say run " + countMark)
	if !ok {
		t.Fatal("count expansion did not parse")
	}
	if f := fillCount(c, 7); f.ArgText != "run 7" || f.Args[1] != "7" {
		t.Fatalf("fillCount = %+v", f)
	}
}
