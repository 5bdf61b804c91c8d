package memories_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/schemas"
)

const remindUsage = "Usage: !remind me|here in <duration> <text> (durations like 90s, 10m, 2h30m, 1d) · " +
	"!remind me|here at <HH:MM> <text> · !remind list [page] · !remind cancel <number>"

// pendingJobs counts the memories module's pending reminders.
func pendingJobs(p *pipelinetest.Pipeline) int {
	return p.Count(`SELECT count(*) FROM scheduled_jobs WHERE module = $1 AND kind = $2 AND state = 'pending'`, memories.Name, memories.JobKind)
}

// TestReminders runs in New York time: 12:00 UTC on the fake clock is 07:00 EST.
func TestReminders(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(day)
	p := start(t, clk)
	// Before the community's first command, so no router has it cached.
	p.SetTimeZone("America/New_York")

	t.Run("refusals", func(t *testing.T) {
		cases := []struct{ text, want string }{
			{"!remind", remindUsage},
			{"!remind me", remindUsage},
			{"!remind me in 10m", remindUsage},
			{"!remind me soon do it", remindUsage},
			{"!remind everyone in 10m hi", remindUsage},
			{"!remind me in 5s hi", "That is too soon: a reminder is at least 10s away."},
			{"!remind me in 9s hi", "That is too soon: a reminder is at least 10s away."},
			{"!remind me in -10m hi", "That is too soon: a reminder is at least 10s away."},
			{"!remind me in 366d hi", "That is too far off: a reminder is at most 365 days away."},
			{"!remind me in 10x hi", `"10x" is not a duration; write it like 90s, 10m, 2h30m, 1d or 1d2h.`},
			{"!remind me in ten hi", `"ten" is not a duration; write it like 90s, 10m, 2h30m, 1d or 1d2h.`},
			{"!remind me at 25:00 hi", `"25:00" is not a time of day; write it as HH:MM, like 18:00 or 9:30.`},
			{"!remind me at noon hi", `"noon" is not a time of day; write it as HH:MM, like 18:00 or 9:30.`},
			{"!remind me in 10m " + strings.Repeat("é", 301), "That reminder is 301 characters long; the most is 300."},
			{"!remind here in 10m " + strings.Repeat("0123456789", 1024), "That reminder is 10240 characters long; the most is 300."},
			{"!remind here in 10m nul\x00", "That reminder contains a control character (U+0000); please send plain text."},
			{"!remind me in 10m esc\x1b[2J", "That reminder contains a control character (U+001B); please send plain text."},
			{"!remind cancel", "Usage: !remind cancel <number> (!remind list shows the numbers)"},
			{"!remind cancel x", "Usage: !remind cancel <number> (!remind list shows the numbers)"},
			{"!remind cancel 99", "There is no pending reminder #99."},
			{"!remind list x", "Usage: !remind list [page]"},
		}
		for _, c := range cases {
			expect(t, p, "alice", "", c.text, c.want)
		}
		if n := pendingJobs(p); n != 0 {
			t.Fatalf("refused reminders scheduled %d jobs", n)
		}
	})

	t.Run("at a time of day, in the community's zone", func(t *testing.T) {
		expect(t, p, "gina", "", "!remind here at 18:00 dinner", "Reminder #1 set for Sat 28 Nov 18:00 EST (in 11h); I'll post it here.")
		// 06:30 has passed today: tomorrow.
		expect(t, p, "gina", "", "!remind me at 6:30 breakfast", "Reminder #2 set for Sun 29 Nov 06:30 EST (in 23h30m); I'll send it to you privately.")
		// Now is not ahead.
		expect(t, p, "gina", "", "!remind me AT 07:00 same minute", "Reminder #3 set for Sun 29 Nov 07:00 EST (in 1d); I'll send it to you privately.")
	})

	t.Run("in a while", func(t *testing.T) {
		for _, c := range []struct{ text, want string }{
			{"!remind me in 10m take the pizza out", "Reminder #4 set for Sat 28 Nov 07:10 EST (in 10m); I'll send it to you privately."},
			{"!remind here in 90s stretch", "Reminder #5 set for Sat 28 Nov 07:01 EST (in 1m30s); I'll post it here."},
			{"!remind HERE IN 2h30m water the plants", "Reminder #6 set for Sat 28 Nov 09:30 EST (in 2h30m); I'll post it here."},
			{"!remind me in 1d2h call mum", "Reminder #7 set for Sun 29 Nov 09:00 EST (in 1d2h); I'll send it to you privately."},
			{"!remind me in 1d tomorrow", "Reminder #8 set for Sun 29 Nov 07:00 EST (in 1d); I'll send it to you privately."},
			{"!remind here in 365d anniversary", "Reminder #9 set for Sun 28 Nov 2027 07:00 EST (in 52w1d); I'll post it here."},
		} {
			expect(t, p, "alice", "", c.text, c.want)
		}
	})

	t.Run("list shows the user's own, in private", func(t *testing.T) {
		expect(t, p, "alice", "", "!remind list", "Your reminders: #5 Sat 28 Nov 07:01 EST (here): stretch · "+
			"#4 Sat 28 Nov 07:10 EST (me): take the pizza out · #6 Sat 28 Nov 09:30 EST (here): water the plants · "+
			"#8 Sun 29 Nov 07:00 EST (me): tomorrow · #7 Sun 29 Nov 09:00 EST (me): call mum · "+
			"#9 Sun 28 Nov 2027 07:00 EST (here): anniversary")
		replies := actionstest.RepliesTo(t, p.Client.JS, lastInvocation(t, p, "remind", "list").ID)
		if len(replies) != 1 || replies[0].Visibility != schemas.VisibilityPrivate || replies[0].Target.UserID != "alice" {
			t.Errorf("the list should be private to alice: %+v", replies)
		}
		expect(t, p, "bob", "", "!remind list", "You have no pending reminders. Set one with !remind me in 10m <text>.")
		expect(t, p, "alice", "", "!remind list 2", "There is only 1 page.")
	})

	t.Run("they fire when due", func(t *testing.T) {
		clk.Advance(2 * time.Minute)
		here := waitReply(t, p, "⏰ alice, reminder: stretch")
		if here.Visibility != schemas.VisibilityPublic || here.Target.UserID != "" || here.Target.ChannelID != pipelinetest.DefaultChannel {
			t.Errorf("a here reminder goes to the channel, publicly: %+v", here.Reply)
		}
		clk.Advance(8 * time.Minute)
		me := waitReply(t, p, "⏰ alice, reminder: take the pizza out")
		if me.Visibility != schemas.VisibilityPrivate || me.Target.UserID != "alice" {
			t.Errorf("a me reminder goes to alice privately: %+v", me.Reply)
		}
		expectContains(t, p, "alice", "", "!remind list", "Your reminders: #6 Sat 28 Nov 09:30 EST (here): water the plants · #8")
	})

	t.Run("cancel", func(t *testing.T) {
		expect(t, p, "bob", "", "!remind cancel 6", "Reminder #6 is not yours; only its owner or a moderator can cancel it.")
		expect(t, p, "bob", "vip", "!remind cancel 6", "Reminder #6 is not yours; only its owner or a moderator can cancel it.")
		expect(t, p, "alice", "", "!remind cancel 6", "Reminder #6 cancelled.")
		expect(t, p, "alice", "", "!remind cancel #6", "There is no pending reminder #6.")
		expect(t, p, "alice", "", "!remind cancel 4", "There is no pending reminder #4.") // fired already
		expect(t, p, "mod", "moderator", "!remind cancel 8", "Reminder #8 (alice's) cancelled.")
		expect(t, p, "alice", "", "!remind list", "Your reminders: #7 Sun 29 Nov 09:00 EST (me): call mum · #9 Sun 28 Nov 2027 07:00 EST (here): anniversary")
		// Past #6's time, and #8's: only what is still pending fires.
		expect(t, p, "bob", "", "!remind here in 1d1h sentinel", "Reminder #10 set for Sun 29 Nov 08:10 EST (in 1d1h); I'll post it here.")
		clk.Advance(25 * time.Hour)
		waitReply(t, p, "⏰ bob, reminder: sentinel")
		for _, gone := range []string{"⏰ alice, reminder: water the plants", "⏰ alice, reminder: tomorrow"} {
			if n := repliesWith(t, p, gone); n != 0 {
				t.Errorf("cancelled %q fired", gone)
			}
		}
	})

	t.Run("at most 10 pending per user", func(t *testing.T) {
		var texts []string
		for i := range 12 {
			texts = append(texts, fmt.Sprintf("!remind me in 1h limit %d", i))
		}
		// At once: the limit holds against concurrent adds too.
		sayAll(t, p, "carol", "", texts)
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs WHERE created_by = 'console:carol' AND state = 'pending'`); n != 10 {
			t.Fatalf("carol has %d pending reminders, want 10", n)
		}
		expect(t, p, "carol", "", "!remind here in 1h one more",
			"You already have 10 pending reminders, the most there can be. See them with !remind list and cancel one with !remind cancel <number>.")
		// Others are not limited by carol's.
		expectContains(t, p, "dave", "", "!remind here in 1h mine", "Reminder #")
		got := expectContains(t, p, "carol", "", "!remind list", "Your reminders: #")
		if n := strings.Count(got, "(me): limit "); n != 10 {
			t.Errorf("carol's list shows %d of 10: %q", n, got)
		}
	})

	t.Run("injection-shaped text round-trips exactly", func(t *testing.T) {
		texts := []string{
			`'; drop table scheduled_jobs; --`,
			`{{ .Secret }} {{template "x"}} ${HOME} %s`,
			"\u202Eevil RTL\u202C \u200F🐧🎉 👩‍👩‍👧  two  spaces\tand a tab",
			`back\slash "double" 'single' <b>html</b> \u0000`,
		}
		for _, text := range texts {
			expectContains(t, p, "dave", "", "!remind here in 1m "+text, "I'll post it here.")
		}
		clk.Advance(time.Minute)
		for _, text := range texts {
			waitReply(t, p, "⏰ dave, reminder: "+text)
		}
	})

	t.Run("redelivered remind schedules nothing", func(t *testing.T) {
		reply := p.SayText("erin", "", "!remind here in 5m said once")
		if !strings.HasPrefix(reply, "Reminder #") {
			t.Fatalf("!remind: %q", reply)
		}
		inv := lastInvocation(t, p, "remind", "here in 5m said once")
		jobs := p.Count(`SELECT count(*) FROM scheduled_jobs`)
		replies := redeliver(t, p, inv)
		if len(replies) != 1 || replies[0].Text != reply {
			t.Fatalf("replies after redelivery: %+v, want %q", replies, reply)
		}
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs`); n != jobs {
			t.Errorf("redelivery changed the jobs: %d, want %d", n, jobs)
		}
		clk.Advance(5 * time.Minute)
		waitReply(t, p, "⏰ erin, reminder: said once")
		p.Settle()
		if n := repliesWith(t, p, "⏰ erin, reminder: said once"); n != 1 {
			t.Errorf("the reminder fired %d times", n)
		}
	})
}

// TestReminderReplicasAndDowntime: a reminder fires once with three
// replicas, and one that came due while no replica ran fires, marked late,
// when one starts.
func TestReminderReplicasAndDowntime(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(day)
	p := start(t, clk)
	p.StartWorker(memories.Name)
	p.StartWorker(memories.Name)

	t.Run("three replicas fire each reminder once", func(t *testing.T) {
		for i := range 6 {
			expectContains(t, p, fmt.Sprintf("user%d", i), "", fmt.Sprintf("!remind here in 1m replicas %d", i), "I'll post it here.")
		}
		expect(t, p, "alice", "", "!remind me in 1m private one", "Reminder #7 set for Sat 28 Nov 12:01 UTC (in 1m); I'll send it to you privately.")
		clk.Advance(time.Minute)
		for i := range 6 {
			waitReply(t, p, fmt.Sprintf("⏰ user%d, reminder: replicas %d", i, i))
		}
		waitReply(t, p, "⏰ alice, reminder: private one")
		// Every replica polls several times more.
		time.Sleep(300 * time.Millisecond)
		for i := range 6 {
			if n := repliesWith(t, p, fmt.Sprintf("⏰ user%d, reminder: replicas %d", i, i)); n != 1 {
				t.Errorf("reminder %d fired %d times", i, n)
			}
		}
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs WHERE state = 'fired' AND NOT late`); n != 7 {
			t.Errorf("%d jobs fired on time, want 7", n)
		}
	})

	t.Run("due while stopped: fires late when a worker starts", func(t *testing.T) {
		expect(t, p, "alice", "", "!remind me in 10m while down", "Reminder #8 set for Sat 28 Nov 12:11 UTC (in 10m); I'll send it to you privately.")
		expect(t, p, "alice", "", "!remind here in 1h much later", "Reminder #9 set for Sat 28 Nov 13:01 UTC (in 1h); I'll post it here.")
		p.StopWorkers(memories.Name)
		clk.Advance(30 * time.Minute)
		time.Sleep(300 * time.Millisecond)
		if n := repliesWith(t, p, "⏰ alice, reminder: while down"); n != 0 {
			t.Fatal("a reminder fired with no worker running")
		}
		p.StartWorker(memories.Name)
		late := waitReply(t, p, "⏰ alice, reminder: while down (sent late: it was due at 12:11)")
		if late.Visibility != schemas.VisibilityPrivate || late.Target.UserID != "alice" {
			t.Errorf("late firing: %+v", late.Reply)
		}
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs WHERE late`); n != 1 {
			t.Errorf("%d jobs marked late, want 1", n)
		}
		expectContains(t, p, "alice", "", "!remind list", "Your reminders: #9 Sat 28 Nov 13:01 UTC (here): much later")

		// Down past midnight: the note names the day.
		p.StopWorkers(memories.Name)
		clk.Advance(24 * time.Hour)
		p.StartWorker(memories.Name)
		waitReply(t, p, "⏰ alice, reminder: much later (sent late: it was due at Sat 28 Nov 13:01 UTC)")
		expect(t, p, "alice", "", "!remind list", "You have no pending reminders. Set one with !remind me in 10m <text>.")
	})
}
