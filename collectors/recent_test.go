package collectors_test

import (
	"testing"

	"github.com/waddlebot/waddlebot/collectors"
)

func TestRecentIDsForgetsTheLeastRecentlySeen(t *testing.T) {
	r := collectors.NewRecentIDs(2)
	r.Add("a")
	r.Add("b")
	if !r.Has("a") { // a is now the most recent
		t.Fatal("a forgotten too early")
	}
	r.Add("c") // pushes out b
	for id, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false} {
		if got := r.Has(id); got != want {
			t.Errorf("Has(%q) = %v, want %v", id, got, want)
		}
	}
}
