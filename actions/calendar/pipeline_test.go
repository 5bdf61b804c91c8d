package calendar_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/calendar"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

// day is Saturday 28 Nov 2026, 12:00 UTC (07:00 in New York).
var day = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

const mod, modRole = "mod", "moderator"

// start runs the pipeline with the calendar module on clk, which the module
// and the workers' schedulers share.
func start(t testing.TB, clk clock.Clock) *pipelinetest.Pipeline {
	t.Helper()
	return pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return calendar.New(calendar.Config{Store: st, Clock: clk})
		}},
		Clock:      clk,
		TuneRouter: func(c *router.Config) { c.UserRateLimit, c.ChannelRateLimit = 100000, 100000 },
	})
}

func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := p.SayText(user, role, text); got != want {
		t.Errorf("%s (%s) says %q:\n got %q\nwant %q", user, role, text, got, want)
	}
}

func expectContains(t *testing.T, p *pipelinetest.Pipeline, user, role, text string, wants ...string) {
	t.Helper()
	got := p.SayText(user, role, text)
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s (%s) says %q:\n got %q\nwant it to contain %q", user, role, text, got, w)
		}
	}
}

// waitReply waits for a reply (a reminder) whose text is text.
func waitReply(t *testing.T, p *pipelinetest.Pipeline, text string) actionstest.Reply {
	t.Helper()
	var found actionstest.Reply
	natstest.Eventually(t, pipelinetest.Wait, "a reply "+text, func() bool {
		for _, r := range actionstest.Replies(t, p.Client.JS) {
			if r.Text == text {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// reminders lists the texts of the module's reminder posts, in order.
func reminders(t *testing.T, p *pipelinetest.Pipeline) []string {
	t.Helper()
	var out []string
	for _, r := range actionstest.Replies(t, p.Client.JS) {
		if strings.HasPrefix(r.Text, "📅") {
			out = append(out, r.Text)
		}
	}
	return out
}

func addUsage(zone string) string {
	return `Usage: !event add "<title>" <when> [daily|weekly|monthly] [description] — <when> is like ` +
		`2026-12-05T18:00, 2026-12-05 18:00, today 21:30, tomorrow 18:00 or fri 20:00 (` + zone + ` time).`
}

const usage = `Usage: !event add "<title>" <when> [daily|weekly|monthly] [description] · !event <id> · ` +
	`!event join|leave <id> · !event approve|reject <id> [reason] · !event cancel <id> · !events [page]`

// TestCommands runs in New York time: 12:00 UTC on the fake clock is 07:00 EST.
func TestCommands(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(day)
	p := start(t, clk)
	expect(t, p, "alice", "", "!events", `No upcoming events. Add one with !event add "<title>" <when>.`)
	p.SetTimeZone("America/New_York")

	t.Run("refusals", func(t *testing.T) {
		ny := addUsage("America/New_York")
		cases := []struct{ text, want string }{
			{"!event", usage},
			{"!event frobnicate 3", usage},
			{"!event 3 4", usage},
			{"!event add", ny},
			{"!event add Movie night tomorrow 18:00", ny},
			{`!event add "Movie night tomorrow 18:00`, ny},
			{`!event add "" tomorrow 18:00`, ny},
			{`!event add "Movie"`, "When does it start? Write it like 2026-12-05T18:00, 2026-12-05 18:00, today 21:30, tomorrow 18:00 or fri 20:00. " + ny},
			{`!event add "Movie" someday`, `"someday" is not a date and time; write it like 2026-12-05T18:00, 2026-12-05 18:00, today 21:30, tomorrow 18:00 or fri 20:00. ` + ny},
			{`!event add "Movie" tomorrow`, `"tomorrow" needs a time of day after it, like tomorrow 18:00. ` + ny},
			{`!event add "Movie" fri 8pm`, `"fri" needs a time of day after it, like fri 18:00. ` + ny},
			{`!event add "Movie" 2026-02-30 18:00`, `"2026-02-30 18:00" is not a date on the calendar. ` + ny},
			{`!event add "Movie" today 06:00`, "Sat 28 Nov 2026 06:00 EST has passed; an event starts in the future. " + ny},
			{`!event add "Movie" 2028-01-01T10:00`, "That is too far off: an event starts at most 366 days ahead. " + ny},
			{`!event add "` + strings.Repeat("x", 101) + `" tomorrow 18:00`, "That title is 101 characters long; the most is 100."},
			{`!event add "Movie" tomorrow 18:00 ` + strings.Repeat("y", 251), "That description is 251 characters long; the most is 250."},
			{"!event add \"Mo\x1bvie\" tomorrow 18:00", "That title contains a control character (U+001B); please send plain text."},
			{"!event 99", "There is no event #99."},
			{"!event join", "Usage: !event join <id> (!events lists them)"},
			{"!event join x", "Usage: !event join <id> (!events lists them)"},
			{"!event leave 1 2", "Usage: !event leave <id> (!events lists them)"},
			{"!event approve", "Usage: !event approve <id> [reason] (!events lists them)"},
			{"!event cancel 99", "There is no event #99."},
			{"!events x", "Usage: !events [page]"},
		}
		for _, c := range cases {
			expect(t, p, "alice", "", c.text, c.want)
		}
		if n := p.Count(`SELECT count(*) FROM calendar_events`); n != 0 {
			t.Fatalf("refusals added %d events", n)
		}
	})

	t.Run("a user's event waits for approval", func(t *testing.T) {
		expect(t, p, "alice", "", `!event add "Movie night" tomorrow 18:00 bring popcorn`,
			"Event #1 “Movie night” (Sun 29 Nov 18:00 EST) added; it waits for a moderator's approval (!event approve 1).")
		// In the community's zone: 18:00 EST is 23:00 UTC.
		if n := p.Count(`SELECT count(*) FROM calendar_events WHERE number = 1 AND starts_at = '2026-11-29T23:00:00Z'`); n != 1 {
			t.Error("event #1 does not start at 18:00 New York time")
		}
		expect(t, p, "bob", "", "!events", `No upcoming events. Add one with !event add "<title>" <when>.`)
		expect(t, p, mod, modRole, "!events", "Upcoming events: #1 Movie night — Sun 29 Nov 18:00 EST [pending]")
		expect(t, p, "bob", "", "!event join 1", "Event #1 is waiting for a moderator's approval; join it once it is approved.")
		expect(t, p, "bob", "", "!event 1", "#1 “Movie night” — Sun 29 Nov 18:00 EST · by alice · waiting for approval · 0 going · bring popcorn")
		expect(t, p, "bob", "vip", "!event approve 1", "Sorry bob, only moderators approve events.")
		expect(t, p, "bob", "", "!event reject 1", "Sorry bob, only moderators reject events.")
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs`); n != 0 {
			t.Errorf("a pending event scheduled %d jobs", n)
		}
		expect(t, p, mod, modRole, "!event approve 1", "Event #1 “Movie night” approved: Sun 29 Nov 18:00 EST. Join with !event join 1.")
		expect(t, p, mod, modRole, "!event approve 1", "Event #1 is already approved.")
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs WHERE module = 'calendar' AND kind = $1 AND state = 'pending'`, calendar.ReminderKind); n != 3 {
			t.Errorf("approval scheduled %d reminders, want 3", n)
		}
		expect(t, p, "bob", "", "!events", "Upcoming events: #1 Movie night — Sun 29 Nov 18:00 EST")
	})

	t.Run("join and leave", func(t *testing.T) {
		expect(t, p, "bob", "", "!event join 1", "bob is going to #1 “Movie night”.")
		expect(t, p, "bob", "", "!event join #1", "You are already going to #1 “Movie night”.")
		expect(t, p, "carol", "", "!event join 1", "carol is going to #1 “Movie night”.")
		expect(t, p, "bob", "", "!event 1", "#1 “Movie night” — Sun 29 Nov 18:00 EST · by alice · 2 going: bob, carol · bring popcorn")
		expect(t, p, "carol", "", "!event leave 1", "carol is no longer going to #1 “Movie night”.")
		expect(t, p, "carol", "", "!event leave 1", "You were not going to #1.")
	})

	t.Run("labelled users and moderators need no approval", func(t *testing.T) {
		p.GiveLabel("dave", calendar.AutoApproveLabel)
		expect(t, p, "dave", "", `!event add “Speedrun” fri 20:00 weekly`,
			"Event #2 “Speedrun” added for Fri 4 Dec 20:00 EST, weekly. Join with !event join 2.")
		expect(t, p, mod, modRole, `!event add "Q&A" 2026-12-01T12:00`, "Event #3 “Q&A” added for Tue 1 Dec 12:00 EST. Join with !event join 3.")
		expect(t, p, "bob", "", "!events", "Upcoming events: #1 Movie night — Sun 29 Nov 18:00 EST · #3 Q&A — Tue 1 Dec 12:00 EST · "+
			"#2 Speedrun — Fri 4 Dec 20:00 EST (weekly)")
	})

	t.Run("reject", func(t *testing.T) {
		expect(t, p, "erin", "", `!event add "Spam party" 2026-12-02 18:00`,
			"Event #4 “Spam party” (Wed 2 Dec 18:00 EST) added; it waits for a moderator's approval (!event approve 4).")
		expect(t, p, mod, modRole, "!event reject 4 off topic", "Event #4 “Spam party” rejected: off topic.")
		expect(t, p, mod, modRole, "!event reject 4", "Event #4 is not waiting for approval; !event cancel 4 cancels it.")
		expect(t, p, mod, modRole, "!event approve 4", "Event #4 is rejected: off topic.")
		expect(t, p, "bob", "", "!event join 4", "Event #4 is rejected: off topic.")
		expect(t, p, "erin", "", "!event cancel 4", "Event #4 is already rejected.")
		expect(t, p, "erin", "", `!event add "Other" 2026-12-02 18:00`, "Event #5 “Other” (Wed 2 Dec 18:00 EST) added; it waits for a moderator's approval (!event approve 5).")
		expect(t, p, mod, modRole, "!event reject 5", "Event #5 “Other” rejected.")
	})

	t.Run("cancel", func(t *testing.T) {
		expect(t, p, "carol", "", "!event cancel 1", "Event #1 is alice's; only they or a moderator can cancel it.")
		expect(t, p, "carol", "vip", "!event cancel 2", "Event #2 is dave's; only they or a moderator can cancel it.")
		expect(t, p, "alice", "", "!event cancel 1", "Event #1 “Movie night” cancelled.")
		expect(t, p, "alice", "", "!event cancel 1", "Event #1 is already cancelled.")
		expect(t, p, mod, modRole, "!event cancel 2", "Event #2 “Speedrun” cancelled.")
		expect(t, p, "bob", "", "!event join 1", "Event #1 is cancelled.")
		expect(t, p, "bob", "", "!events", "Upcoming events: #3 Q&A — Tue 1 Dec 12:00 EST")
		// Only #3's reminders are left.
		if n := p.Count(`SELECT count(*) FROM scheduled_jobs WHERE state = 'pending' AND payload->>'event' <> '3'`); n != 0 {
			t.Errorf("cancelled events left %d jobs", n)
		}
		// Past #1's and #2's reminder times: nothing of theirs is posted.
		// And past #3's 1-day and 1-hour reminders, which no worker could
		// post in time: only the 15-minute one is still true.
		clk.Set(time.Date(2026, 12, 1, 16, 50, 0, 0, time.UTC))
		waitReply(t, p, "📅 “Q&A” (#3) starts in 15 minutes, at 12:00 EST. 0 going; join with !event join 3.")
		for _, r := range reminders(t, p) {
			if !strings.Contains(r, "(#3)") {
				t.Errorf("a cancelled event was announced: %q", r)
			}
		}
		if got := reminders(t, p); len(got) != 1 {
			t.Errorf("reminders posted: %q, want only #3's 15-minute one", got)
		}
		expect(t, p, "bob", "", "!event join 3", "bob is going to #3 “Q&A”.")
		clk.Set(time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC))
		expect(t, p, "carol", "", "!event join 3", "Event #3 is over.")
		expect(t, p, "carol", "", "!event 3", "#3 “Q&A” — Tue 1 Dec 12:00 EST (over) · by mod · 1 going: bob")
	})

	t.Run("paging", func(t *testing.T) {
		// Titles are clipped to 60 characters in the list: about 22 fit a console page.
		title := strings.Repeat("A long title ", 5)
		for i := range 30 {
			date := time.Date(2026, 12, 10+i, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
			expectContains(t, p, mod, modRole, fmt.Sprintf(`!event add "%s%02d" %s 19:00`, title, i, date), "added for")
		}
		expectContains(t, p, "bob", "", "!events", "Upcoming events: #6 A long title", "(page 1/2; next: !events 2)")
		expectContains(t, p, "bob", "", "!events 2", "(page 2/2)")
		expect(t, p, "bob", "", "!events 3", "There are only 2 pages.")
	})
}

// TestReminders: an event's three reminders post once each with two worker
// replicas, and a recurring event's next occurrence gets its own.
func TestReminders(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(day)
	p := start(t, clk)
	p.StartWorker(calendar.Name)

	expect(t, p, mod, modRole, `!event add "Raid night" 2026-11-29 13:00 be there`, "Event #1 “Raid night” added for Sun 29 Nov 13:00 UTC. Join with !event join 1.")
	expect(t, p, "bob", "", "!event join 1", "bob is going to #1 “Raid night”.")
	// Starts within the day: the 1-day reminder is skipped, not posted late.
	expect(t, p, mod, modRole, `!event add "Soon" today 13:30`, "Event #2 “Soon” added for Sat 28 Nov 13:30 UTC. Join with !event join 2.")
	expect(t, p, "alice", "", `!event add "Unapproved" 2026-11-29 13:00`,
		"Event #3 “Unapproved” (Sun 29 Nov 13:00 UTC) added; it waits for a moderator's approval (!event approve 3).")
	expect(t, p, mod, modRole, `!event add "Game night" today 12:30 weekly`, "Event #4 “Game night” added for Sat 28 Nov 12:30 UTC, weekly. Join with !event join 4.")

	// The clock stops at each reminder's time, in order; Game night starts
	// at the second stop and rolls on to Sat 5 Dec, whose reminders follow.
	at := func(d, h, mi int) time.Time { return time.Date(2026, 11, d, h, mi, 0, 0, time.UTC) }
	steps := []struct {
		at   time.Time
		post string
	}{
		{at(28, 12, 15), "📅 “Game night” (#4) starts in 15 minutes, at 12:30 UTC. 0 going; join with !event join 4."},
		{at(28, 12, 30), "📅 “Soon” (#2) starts in 1 hour, at 13:30 UTC. 0 going; join with !event join 2."},
		{at(28, 13, 0), "📅 “Raid night” (#1) starts in 1 day, at 13:00 UTC. 1 going; join with !event join 1."},
		{at(28, 13, 15), "📅 “Soon” (#2) starts in 15 minutes, at 13:30 UTC. 0 going; join with !event join 2."},
		{at(29, 12, 0), "📅 “Raid night” (#1) starts in 1 hour, at 13:00 UTC. 1 going; join with !event join 1."},
		{at(29, 12, 45), "📅 “Raid night” (#1) starts in 15 minutes, at 13:00 UTC. 1 going; join with !event join 1."},
		{at(34, 12, 30), "📅 “Game night” (#4) starts in 1 day, at 12:30 UTC. 0 going; join with !event join 4."},
		{at(35, 11, 30), "📅 “Game night” (#4) starts in 1 hour, at 12:30 UTC. 0 going; join with !event join 4."},
		{at(35, 12, 15), "📅 “Game night” (#4) starts in 15 minutes, at 12:30 UTC. 0 going; join with !event join 4."},
	}
	for i, s := range steps {
		clk.Set(s.at)
		posts := 1
		if i == len(steps)-1 {
			posts = 2 // the same words as the first step's, for the next occurrence
		}
		natstest.Eventually(t, pipelinetest.Wait, "a reminder "+s.post, func() bool {
			n := 0
			for _, r := range reminders(t, p) {
				if r == s.post {
					n++
				}
			}
			return n == posts
		})
		if i == 1 {
			natstest.Eventually(t, pipelinetest.Wait, "Game night to roll over", func() bool {
				return p.Count(`SELECT count(*) FROM calendar_events WHERE number = 4 AND occurrence = 1 AND starts_at = '2026-12-05T12:30:00Z'`) == 1
			})
			expectContains(t, p, "bob", "", "!event 4", "#4 “Game night” — Sat 5 Dec 12:30 UTC, weekly")
		}
	}
	// Every replica polls several times more.
	time.Sleep(300 * time.Millisecond)
	got := reminders(t, p)
	counts := map[string]int{}
	for _, r := range got {
		counts[r]++
	}
	for i, s := range steps {
		want := 1
		if i == 0 || i == len(steps)-1 {
			want = 2 // Game night's 15-minute reminder, for both occurrences
		}
		if counts[s.post] != want {
			t.Errorf("%q posted %d times, want %d", s.post, counts[s.post], want)
		}
	}
	if len(got) != len(steps) {
		t.Errorf("%d reminders posted, want %d: %q", len(got), len(steps), got)
	}
	for _, r := range got {
		if strings.Contains(r, "Unapproved") {
			t.Errorf("an unapproved event was announced: %q", r)
		}
	}
	for _, r := range actionstest.Replies(t, p.Client.JS) {
		if strings.HasPrefix(r.Text, "📅") && (r.Target.ChannelID != pipelinetest.DefaultChannel || r.Target.UserID != "" || r.Visibility != schemas.VisibilityPublic) {
			t.Errorf("a reminder goes to the event's channel, publicly: %+v", r.Reply)
		}
	}
}

// TestRedeliveredAddSchedulesNothingTwice: a redelivered !event add (a
// retry past the commands stream's duplicate window) adds no second event
// and schedules no second set of reminders, since the jobs' ids derive from
// the invocation; its reply is the one already sent.
func TestRedeliveredAddSchedulesNothingTwice(t *testing.T) {
	t.Parallel()
	p := start(t, clock.NewFake(day))
	expectContains(t, p, mod, modRole, `!event add "Q&A" 2026-12-01T12:00`, "Event #1 “Q&A” added for Tue 1 Dec 12:00")
	var add *schemas.Invocation
	for _, inv := range natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(calendar.Name)) {
		if strings.HasPrefix(inv.ArgText, "add ") {
			add = &inv
		}
	}
	if add == nil {
		t.Fatal("no invocation of !event add in WB_COMMANDS")
	}
	const jobs = `SELECT count(*) FROM scheduled_jobs WHERE module = 'calendar' AND kind = $1 AND state = 'pending'`
	if n := p.Count(jobs, calendar.ReminderKind); n != 3 {
		t.Fatalf("the add scheduled %d reminders, want 3", n)
	}
	before := actionstest.RepliesTo(t, p.Client.JS, add.ID)
	if len(before) != 1 {
		t.Fatalf("%d replies to the add before the redelivery, want 1", len(before))
	}

	actionstest.PublishAs(t, p.Client.JS, add, add.ID+"-again")
	p.Settle()

	if n := p.Count(`SELECT count(*) FROM calendar_events`); n != 1 {
		t.Errorf("%d events after the redelivery, want 1", n)
	}
	if n := p.Count(`SELECT count(*) FROM scheduled_jobs`); n != 3 {
		t.Errorf("%d jobs after the redelivery, want 3", n)
	}
	after := actionstest.RepliesTo(t, p.Client.JS, add.ID)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].Text != before[0].Text {
		t.Errorf("replies to the add after the redelivery: %+v, want %+v", after, before)
	}
}
