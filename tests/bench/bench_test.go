package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// TestSmallRun runs both chains briefly: every command is answered and the
// report is filled in. It checks the bench works, not how fast anything is.
func TestSmallRun(t *testing.T) {
	cfg := Defaults()
	cfg.DatabaseURL = storetest.ServerURL()
	cfg.Channels, cfg.Users = 5, 20
	cfg.SteadyRate, cfg.SteadyFor, cfg.MaxEvents = 200, time.Second, 2000
	cfg.Logger = logging.Discard()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range []Phase{rep.Steady, rep.Max, rep.RawSteady, rep.RawMax} {
		if ph.Events == 0 || ph.Commands == 0 || ph.Replies != ph.Commands || ph.EventsPS <= 0 || ph.P99 <= 0 {
			t.Errorf("%s: %+v", ph.Name, ph)
		}
	}
	if rep.Max.Events != cfg.MaxEvents || rep.Steady.Events != 200 {
		t.Errorf("events: steady %d, max %d", rep.Steady.Events, rep.Max.Events)
	}
	if rep.ThroughputPct <= 0 {
		t.Errorf("no throughput ratio")
	}
}

// TestRefusesAServerRunningWaddleBot: with WaddleBot's streams on the named
// server, the bench would rewrite them and consume live events.
func TestRefusesAServerRunningWaddleBot(t *testing.T) {
	env := natstest.Start(t, nil)
	cfg := Defaults()
	cfg.NATSURL = env.Server.URL()
	cfg.DatabaseURL = storetest.ServerURL()
	cfg.Logger = logging.Discard()
	_, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "already has WaddleBot's streams") {
		t.Fatalf("err = %v", err)
	}
}
