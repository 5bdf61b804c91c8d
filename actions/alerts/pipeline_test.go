package alerts_test

import (
	"context"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/alerts"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// FollowEvent is a follow on the console channel as a collector would
// publish it.
func followEvent(name string) *schemas.Event {
	id := schemas.NewEventID()
	now := time.Now().UTC()
	return &schemas.Event{Version: schemas.Version, ID: id, PlatformEventID: id, Platform: schemas.PlatformConsole,
		Kind: schemas.KindFollow, Channel: schemas.Channel{ID: pipelinetest.DefaultChannel, Name: pipelinetest.DefaultChannel},
		User: schemas.User{ID: "f-" + name, Login: name, DisplayName: name}, OccurredAt: now, ReceivedAt: now}
}

func TestAlertsThroughThePipeline(t *testing.T) {
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(*store.Store) actions.Module { return alerts.New() }},
	})
	// Only moderators feed the ticker; the router refuses others silently.
	p.Silent("viewer", "", "!ticker spam")
	if got := p.SayText("mod", "moderator", "!ticker Raffle at 9"); got != "Ticker set." {
		t.Fatalf("!ticker answered %q", got)
	}
	c := p.Community(pipelinetest.DefaultChannel)
	if err := collectors.NewPublisher(p.Client.JS, logging.Discard()).Publish(context.Background(), followEvent("Ada")); err != nil {
		t.Fatal(err)
	}
	var items []schemas.OverlayItem
	natstest.Eventually(t, pipelinetest.Wait, "the follow alert on WB_OVERLAY", func() bool {
		items = natstest.Decode[schemas.OverlayItem](t, p.Client.JS, schemas.StreamOverlay, schemas.OverlaySubject(c.ID, schemas.OverlayAlert))
		return len(items) > 0
	})
	if len(items) != 1 || items[0].Text != "Ada just followed!" || items[0].DurationMS != 5000 || items[0].CommunityID != c.ID {
		t.Fatalf("alerts %+v", items)
	}
	ticker := natstest.Decode[schemas.OverlayItem](t, p.Client.JS, schemas.StreamOverlay, schemas.OverlaySubject(c.ID, schemas.OverlayTicker))
	if len(ticker) != 1 || ticker[0].Text != "Raffle at 9" {
		t.Fatalf("ticker %+v: only the moderator's text", ticker)
	}
}
