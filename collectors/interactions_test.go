package collectors_test

import (
	"testing"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestInteractionsRoundTrip(t *testing.T) {
	env := natstest.Start(t, nil)
	in, err := collectors.OpenInteractions(t.Context(), env.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	id := schemas.NewEventID()
	if _, ok, err := in.Get(t.Context(), "discord", id); err != nil || ok {
		t.Fatalf("before Put: ok %v err %v", ok, err)
	}
	want := collectors.Interaction{AppID: "42", Token: "tok", Ephemeral: true}
	if err := in.Put(t.Context(), "discord", id, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := in.Get(t.Context(), "discord", id)
	if err != nil || !ok || got != want {
		t.Fatalf("Get = %+v %v %v, want %+v", got, ok, err, want)
	}
	if _, ok, _ := in.Get(t.Context(), "slack", id); ok {
		t.Fatal("an interaction of discord was found under slack")
	}
}

func TestClaimOriginalGoesToTheFirstReply(t *testing.T) {
	env := natstest.Start(t, nil)
	in, err := collectors.OpenInteractions(t.Context(), env.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	event := schemas.NewEventID()
	first, second := schemas.NewEventID(), schemas.NewEventID()
	for _, tt := range []struct {
		reply string
		want  bool
	}{{first, true}, {second, false}, {first, true}, {second, false}} {
		got, err := in.ClaimOriginal(t.Context(), "discord", event, tt.reply)
		if err != nil || got != tt.want {
			t.Fatalf("ClaimOriginal(%s) = %v, %v; want %v", tt.reply, got, err, tt.want)
		}
	}
	if got, _ := in.ClaimOriginal(t.Context(), "discord", schemas.NewEventID(), second); !got {
		t.Fatal("another event's original was not free")
	}
}
