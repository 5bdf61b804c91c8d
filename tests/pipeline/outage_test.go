package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// With PostgreSQL unreachable for a while, the router (resolving channels it
// has never seen) and a module with writes (committing its outbox) pause
// instead of counting failures: nothing is dead-lettered, nothing is
// answered, and when PostgreSQL returns every command is answered once and
// written once.
func TestPostgresOutageRouterAndWorker(t *testing.T) {
	h := newHarness(t)
	proxy, proxied := storetest.StartProxy(t, h.dbURL)
	h.st = openStore(t, proxied, h.log)
	tally := newEffectModule(h, "tally", "tally")
	h.startAll(tally.module())
	routerReady, tallyReady := h.router.Ready, h.workers["tally"].Ready

	// Warm up: the known channel's community is in the router's cache, and
	// a command with writes goes through.
	known := h.watchConsole("known")
	warm, replies := h.say("known", "alice", "!tally")
	if len(replies) != 1 || replies[0].Text != "tally 1" {
		t.Fatalf("warm-up replies: %+v", replies)
	}
	h.expectPong("known", "alice")
	// The router also needs each user's labels, which it caches per user:
	// the users who type during the outage have spoken before.
	for i := range 3 {
		h.expectPong("known", fmt.Sprintf("user%d", i))
	}

	proxy.Down()
	downAt := time.Now()
	// Commands for the module with writes on the known channel: the router
	// routes them from its cache, the worker cannot commit.
	var tallies []*schemas.Event
	for i := range 3 {
		tallies = append(tallies, h.post("known", fmt.Sprintf("user%d", i), "!tally"))
	}
	eventually(t, "the tally worker to pause", func() bool { return !tallyReady() })
	// Commands on channels the router has never seen: it must reach
	// PostgreSQL to make their provisional communities.
	var pings []*schemas.Event
	for i := range 3 {
		pings = append(pings, h.post(fmt.Sprintf("new%d", i), "bob", "!ping"))
	}
	eventually(t, "the router to pause", func() bool { return !routerReady() })
	// Far longer than back-off × failure limit (20 ms × 3): had the outage
	// been counted as handler failures, it would have dead-lettered by now.
	time.Sleep(max(0, 2*time.Second-time.Since(downAt)))
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Fatalf("dead-lettered during the outage: %s", describe(dls...))
	}
	for _, ev := range append(append([]*schemas.Event{}, tallies...), pings...) {
		if n := len(h.repliesToEvent(ev.ID)); n != 0 {
			t.Fatalf("event %q on %s was answered while PostgreSQL was down", ev.Text, ev.Channel.ID)
		}
	}
	if routerReady() || tallyReady() {
		t.Errorf("ready during the outage: router %v, tally %v", routerReady(), tallyReady())
	}

	proxy.Up(t)
	type expect struct {
		ev      *schemas.Event
		replyID string
	}
	var all []expect
	for _, ev := range tallies {
		all = append(all, expect{ev, commandReplyID(ev.ID, "tally", "tally")})
	}
	for _, ev := range pings {
		all = append(all, expect{ev, pingReplyID(ev.ID)})
	}
	eventually(t, "every command to be answered after PostgreSQL came back", func() bool {
		for _, e := range all {
			if len(h.replies(e.replyID)) == 0 {
				return false
			}
		}
		return true
	})
	eventually(t, "the router and the worker to be ready again", func() bool { return routerReady() && tallyReady() })
	h.settle()

	for _, e := range all {
		if replies := h.repliesToEvent(e.ev.ID); len(replies) != 1 || replies[0].ID != e.replyID {
			t.Errorf("event %q on %s: replies %+v, want one with id %s", e.ev.Text, e.ev.Channel.ID, replies, e.replyID)
		}
	}
	for _, ev := range append([]*schemas.Event{warm}, tallies...) {
		inv := schemas.InvocationID(ev.ID, "tally", "cmd:tally")
		if n := tally.rows(h, inv); n != 1 {
			t.Errorf("invocation %s wrote %d rows, want 1", inv, n)
		}
		if n := known.count(commandReplyID(ev.ID, "tally", "tally")); n != 1 {
			t.Errorf("the console sender delivered the reply to %s %d times, want 1", inv, n)
		}
	}
	if n := tally.rows(h, ""); n != 1+len(tallies) {
		t.Errorf("tally_effects has %d rows, want %d", n, 1+len(tallies))
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %s", describe(dls...))
	}
}
