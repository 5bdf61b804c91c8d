package clock

import (
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	start := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	f := NewFake(start)
	soon, later := f.After(time.Minute), f.After(time.Hour)
	f.Advance(30 * time.Second)
	select {
	case <-soon:
		t.Fatal("fired early")
	default:
	}
	f.Advance(31 * time.Second)
	select {
	case at := <-soon:
		if !at.Equal(start.Add(61 * time.Second)) {
			t.Fatalf("fired at %v", at)
		}
	default:
		t.Fatal("did not fire")
	}
	select {
	case <-later:
		t.Fatal("the hour fired")
	default:
	}
	f.Set(start) // backwards: ignored
	if !f.Now().Equal(start.Add(61 * time.Second)) {
		t.Fatal("clock went backwards")
	}
	select {
	case <-f.After(0):
	default:
		t.Fatal("After(0) did not fire at once")
	}
}
