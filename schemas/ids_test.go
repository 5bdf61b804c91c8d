package schemas

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// The ids below are part of the public contract: external code computes them
// too (uuid.uuid5 in Python gives the same values), and a change would make every in-flight retry look like new work.
func TestDeterministicIDsAreStable(t *testing.T) {
	ev := EventID("twitch", "3f0c5b4e-message")
	tests := []struct {
		name, got, want string
	}{
		{"event", ev, "08f9c695-f136-5951-b706-d03ebf7e9e71"},
		{"invocation", InvocationID(ev, "core", "cmd:ping"), "c444b35a-b258-516a-b797-b464e22f3063"},
		{"firing", FiringID("0b2a5c1e-8f41-4d56-9a43-3c7a1f0c9b11", time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)), "27142920-2d1b-57f7-b359-812b3297eeae"},
		{"reply", ReplyID(InvocationID(ev, "core", "cmd:ping"), 1), "3c8c1807-620e-5427-9453-0bfefeb89893"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s id = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestIDsDiffer(t *testing.T) {
	ev := EventID("slack", "T1:C1:1700000000.000100")
	if ev != EventID("slack", "T1:C1:1700000000.000100") {
		t.Fatal("event id not deterministic")
	}
	if ev == EventID("discord", "T1:C1:1700000000.000100") {
		t.Fatal("event ids of two platforms collide")
	}
	a, b := InvocationID(ev, "ai", "cmd:ai"), InvocationID(ev, "ai", "on:chat")
	if a == b {
		t.Fatal("two routes of one module share an invocation id")
	}
	if ReplyID(a, 1) == ReplyID(a, 2) {
		t.Fatal("two parts share a reply id")
	}
	if ReplayMsgID(a, 7) == a || ReplayMsgID(a, 7) != ReplayMsgID(a, 7) {
		t.Fatal("replay id must differ from the original and be stable")
	}
	for _, id := range []string{ev, a, NewEventID()} {
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("%q is not a UUID", id)
		}
	}
	if v := uuid.MustParse(NewEventID()).Version(); v != 7 {
		t.Fatalf("NewEventID is version %d, want 7", v)
	}
}
