package labels_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/labels"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// echo is a module that tells what labels the router gave the invoker,
// standing in for the modules that check them (memories, calendar).
func echo(*store.Store) actions.Module {
	return actions.Module{
		Manifest: schemas.Manifest{Name: "labelecho", Version: "1.0.0", DefaultEnabled: true,
			Commands: []schemas.CommandSpec{{Name: "mylabels", Permission: schemas.PermissionEveryone}}},
		Handle: func(_ context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
			return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: "labelecho",
				Replies: []schemas.ReplyText{{Text: "labels=[" + strings.Join(inv.Labels, ",") + "]"}}}, nil
		},
	}
}

func start(t *testing.T) *pipelinetest.Pipeline {
	t.Helper()
	return pipelinetest.Start(t, pipelinetest.Options{Modules: []func(*store.Store) actions.Module{
		func(st *store.Store) actions.Module { return labels.New(labels.Config{Store: st}) },
		echo,
	}})
}

const mod, modRole = "mod", "moderator"

func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := p.SayText(user, role, text); got != want {
		t.Errorf("%s says %q:\n got %q\nwant %q", user, text, got, want)
	}
}

func expectContains(t *testing.T, p *pipelinetest.Pipeline, user, role, text string, want ...string) string {
	t.Helper()
	got := p.SayText(user, role, text)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s says %q:\n got %q\nwant it to contain %q", user, text, got, w)
		}
	}
	return got
}

func labelCount(p *pipelinetest.Pipeline) int {
	return p.Count(`SELECT count(*) FROM labels`)
}

func TestLabels(t *testing.T) {
	p := start(t)
	ctx := context.Background()

	t.Run("usage names the well-known labels", func(t *testing.T) {
		expectContains(t, p, mod, modRole, "!label",
			"Usage: !label add @user <label>, !label remove @user <label>, !label who <label> [page].",
			"at most 5 per user", "memories (may add quotes and bookmarks)", "event-autoapprove", "inventory")
		expectContains(t, p, mod, modRole, "!label frob @bob x", `There is no !label "frob". Usage:`)
		expect(t, p, mod, modRole, "!label add @bob", "Usage: !label add @user <label> (for example !label add @bob memories).")
		expect(t, p, mod, modRole, "!label remove", "Usage: !label remove @user <label> (for example !label remove @bob memories).")
		expect(t, p, mod, modRole, "!label add @bob memories vip",
			"One label at a time, and a label is one word: !label add @user <label> (for example !label add @bob memories).")
		expectContains(t, p, mod, modRole, "!help label", "!label", "Who: moderator", "event-autoapprove")
	})

	t.Run("members and vips may not label", func(t *testing.T) {
		p.Silent("carol", "member", "!label add @carol memories")
		p.Silent("carol", "vip", "!label add @carol memories")
		p.Silent("carol", "", "!label remove @bob memories")
		if n := labelCount(p); n != 0 {
			t.Fatalf("%d labels after refused commands", n)
		}
	})

	t.Run("add reaches the next invocation and the list", func(t *testing.T) {
		// bob is seen first without labels, so the router caches that.
		expect(t, p, "bob", "", "!mylabels", "labels=[]")
		expect(t, p, mod, modRole, "!label add @Bob Memories", "bob now has the label memories. Labels: memories (1 of 5).")
		expect(t, p, "bob", "", "!mylabels", "labels=[memories]")
		expect(t, p, "Bob", "", "!mylabels", "labels=[memories]") // logins compare in lower case
		expect(t, p, "carol", "", "!mylabels", "labels=[]")
		expect(t, p, "carol", "", "!labels @bob", "bob's labels: memories")
		expect(t, p, "carol", "", "!labels BOB", "bob's labels: memories")
		expect(t, p, "bob", "", "!labels", "Your labels: memories")
		expect(t, p, "carol", "", "!labels", "You have no labels here.")
		expect(t, p, "carol", "", "!labels @dave", "dave has no labels here.")

		if n := p.Count(`SELECT count(*) FROM labels WHERE platform = 'console' AND user_login = 'bob' AND label = 'memories' AND added_by = 'console/mod'`); n != 1 {
			t.Errorf("stored rows for bob/memories: %d", n)
		}
		community := p.Community(pipelinetest.DefaultChannel)
		log, err := p.Store.AuditLog(ctx, community.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) == 0 || log[0].Action != "label.add" || log[0].Target != "console/bob" || log[0].Actor != "console/mod" ||
			log[0].Details["label"] != "memories" {
			t.Errorf("audit log starts %+v", log)
		}
	})

	t.Run("duplicate", func(t *testing.T) {
		expect(t, p, mod, modRole, "!label add bob memories", "bob has the label memories already.")
		if n := p.Count(`SELECT count(*) FROM labels WHERE user_login = 'bob'`); n != 1 {
			t.Errorf("bob has %d labels", n)
		}
	})

	t.Run("bad labels are refused", func(t *testing.T) {
		rule := "a label is 1 to 32 of a-z, 0-9, '_' or '-' (like memories or event-autoapprove)."
		expect(t, p, mod, modRole, `!label add @bob "two words"`, `"two words" is not a label: `+rule)
		expect(t, p, mod, modRole, "!label add @bob mem!ries", `"mem!ries" is not a label: `+rule)
		expect(t, p, mod, modRole, "!label add @bob "+strings.Repeat("a", 33), "That label is 33 characters long: "+rule)
		expect(t, p, mod, modRole, "!label add @bob zoë", `"zoë" is not a label: `+rule)
		if n := labelCount(p); n != 1 {
			t.Errorf("%d labels after refusals", n)
		}
	})

	t.Run("limit of five", func(t *testing.T) {
		for i, l := range []string{"a", "b", "c", "d"} {
			want := fmt.Sprintf("bob now has the label %s. Labels: ", l)
			expectContains(t, p, mod, modRole, "!label add @bob "+l, want, fmt.Sprintf("(%d of 5)", i+2))
		}
		expect(t, p, mod, modRole, "!label add @bob e",
			"bob has 5 labels already (the most): remove one first. Labels: a, b, c, d, memories.")
		// A label bob has is "already", not "the most".
		expect(t, p, mod, modRole, "!label add @bob c", "bob has the label c already.")
		if n := p.Count(`SELECT count(*) FROM labels WHERE user_login = 'bob'`); n != 5 {
			t.Errorf("bob has %d labels", n)
		}
		expect(t, p, "bob", "", "!mylabels", "labels=[a,b,c,d,memories]")
		// The limit is per user: carol may still get labels.
		expect(t, p, mod, modRole, "!label add @carol e", "carol now has the label e. Labels: e (1 of 5).")
	})

	t.Run("remove and unknown", func(t *testing.T) {
		expect(t, p, mod, modRole, "!label remove @BOB A", "bob no longer has the label a.")
		expect(t, p, "bob", "", "!mylabels", "labels=[b,c,d,memories]")
		expect(t, p, mod, modRole, "!label remove @bob a", "bob has no label a. Labels: b, c, d, memories.")
		expect(t, p, mod, modRole, "!label remove @dave a", "dave has no label a: they have no labels here.")
		expect(t, p, mod, modRole, "!label add @bob a", "bob now has the label a. Labels: a, b, c, d, memories (5 of 5).")
		expect(t, p, mod, modRole, "!label remove @carol e", "carol no longer has the label e.")
		community := p.Community(pipelinetest.DefaultChannel)
		log, err := p.Store.AuditLog(ctx, community.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) < 2 || log[0].Action != "label.remove" || log[0].Target != "console/carol" || log[1].Action != "label.add" {
			t.Errorf("audit log starts %+v", log)
		}
	})

	t.Run("pages", func(t *testing.T) {
		expect(t, p, "carol", "", "!labels @bob 1", "bob's labels: a · b · c · d · memories")
		expect(t, p, "carol", "", "!labels @bob 2", "There is only 1 page.")
		expect(t, p, "bob", "", "!labels 2", "There is only 1 page.")
		expect(t, p, "bob", "", "!labels 1", "Your labels: a · b · c · d · memories")
		expect(t, p, "carol", "", "!labels @bob two", `"two" is not a page number. Usage: !labels [@user] [page].`)
		expect(t, p, "carol", "", "!labels @bob @carol 1", "Usage: !labels [@user] [page] (for example !labels @bob).")

		// Holders of a label fill more than one message: 80 users with
		// 30-character logins, stored directly to keep the test short.
		community := p.Community(pipelinetest.DefaultChannel)
		for i := range 80 {
			login := fmt.Sprintf("viewer%024d", i)
			p.Must(p.Store.AddLabel(ctx, p.Store.Pool(), community.ID, schemas.PlatformConsole, login, "crew", "test", labels.MaxPerUser))
		}
		p.Must(p.Store.AddLabel(ctx, p.Store.Pool(), community.ID, schemas.PlatformTwitch, "twitchfan", "crew", "test", labels.MaxPerUser))
		first := expectContains(t, p, mod, modRole, "!label who crew", "With the label crew: viewer",
			"(page 1/2; next: !label who crew 2)")
		second := expectContains(t, p, mod, modRole, "!label who CREW 2", "With the label crew: ",
			"viewer000000000000000000000079 · twitchfan (twitch) (page 2/2)")
		for _, page := range []string{first, second} {
			if n := len([]rune(page)); n > schemas.TextLimit(schemas.PlatformConsole) {
				t.Errorf("a page of %d characters", n)
			}
		}
		if strings.Count(first, "viewer")+strings.Count(second, "viewer") != 80 {
			t.Errorf("the pages do not list 80 viewers once each:\n%s\n%s", first, second)
		}
		expect(t, p, mod, modRole, "!label who crew 3", "There are only 2 pages.")
		expect(t, p, mod, modRole, "!label who nobody-has-it", "Nobody has the label nobody-has-it here.")
		expect(t, p, mod, modRole, "!label who", "Usage: !label who <label> [page] (for example !label who memories).")
		expect(t, p, mod, modRole, "!label who crew x", `"x" is not a page number. Usage: !label who <label> [page] (for example !label who memories).`)
	})

	t.Run("mention forms", func(t *testing.T) {
		// Discord: <@id> and <@!id>; the console user "123" stands in for
		// the Discord user whose id is 123.
		expect(t, p, mod, modRole, "!label add <@123> memories", "<@123> now has the label memories. Labels: memories (1 of 5).")
		expect(t, p, mod, modRole, "!label add <@!123> inventory", "<@123> now has the label inventory. Labels: inventory, memories (2 of 5).")
		expect(t, p, "123", "", "!mylabels", "labels=[inventory,memories]")
		expect(t, p, "carol", "", "!labels <@123>", "<@123>'s labels: inventory · memories")
		expect(t, p, "carol", "", "!labels @123", "123's labels: inventory · memories")
		// Slack: <@U…> and <@U…|name>, stored lower-cased as the router looks them up.
		expect(t, p, mod, modRole, "!label add <@U02ABC|frank> event-autoapprove",
			"<@U02ABC> now has the label event-autoapprove. Labels: event-autoapprove (1 of 5).")
		expect(t, p, mod, modRole, "!label add <@U02ABC> memories",
			"<@U02ABC> now has the label memories. Labels: event-autoapprove, memories (2 of 5).")
		expect(t, p, "U02ABC", "", "!mylabels", "labels=[event-autoapprove,memories]")
		expect(t, p, mod, modRole, "!label remove <@U02ABC|frank> memories", "<@U02ABC> no longer has the label memories.")
		expect(t, p, "U02ABC", "", "!mylabels", "labels=[event-autoapprove]")
		if n := p.Count(`SELECT count(*) FROM labels WHERE user_login = 'u02abc'`); n != 1 {
			t.Errorf("u02abc has %d labels", n)
		}
	})

	t.Run("injection-shaped input is refused", func(t *testing.T) {
		before := labelCount(p)
		notUser := " is not a user: name one as @login (letters, digits, '_', '-' or '.', up to 64), or mention them on Discord or Slack."
		notLabel := " is not a label: a label is 1 to 32 of a-z, 0-9, '_' or '-' (like memories or event-autoapprove)."
		long := strings.Repeat("x", 10000)
		for _, c := range []struct{ text, want string }{
			{`!label add "'; drop table labels; --" memories`, `"'; drop table labels; --"` + notUser},
			{`!label add @bob "'; drop table labels; --"`, `"'; drop table labels; --"` + notLabel},
			{"!label add @bob '; drop table labels; --",
				"One label at a time, and a label is one word: !label add @user <label> (for example !label add @bob memories)."},
			{"!label add @bob {{label}}", `"{{label}}"` + notLabel},
			{"!label add {{user}} x", `"{{user}}"` + notUser},
			{"!label add @bob \u202eseiromem", `"\u202eseiromem"` + notLabel},
			{"!label add @\u202ebob x", `"@\u202ebob"` + notUser},
			{"!label add @bob 🐧", `"🐧"` + notLabel},
			{"!label add @🐧 x", `"@🐧"` + notUser},
			{"!label add @bob \"mem\x00ories\"", `"mem\x00ories"` + notLabel},
			{"!label add @bob \"mem\x1bories\"", `"mem\x1bories"` + notLabel},
			{"!label add @bob " + long, "That label is 10000 characters long: a label is 1 to 32 of a-z, 0-9, '_' or '-' (like memories or event-autoapprove)."},
			{"!label add @bob " + long + "!", `"` + strings.Repeat("x", 39) + `…"` + notLabel},
			{"!label add @" + long + " x", `"@` + strings.Repeat("x", 38) + `…"` + notUser},
			{"!labels <@123", `"<@123"` + notUser},
			{"!labels <@U02ABC|a>b>", `"<@U02ABC|a>b>"` + notUser},
		} {
			expect(t, p, mod, modRole, c.text, c.want)
		}
		if n := labelCount(p); n != before {
			t.Errorf("%d labels after refusals, want %d", n, before)
		}
	})
}

// TestRedeliveredAddAddsOnce: a `!label add` delivered again is answered
// from the outbox: one row, one audit entry, the same reply.
func TestRedeliveredAddAddsOnce(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	expect(t, p, mod, modRole, "!label add @bob memories", "bob now has the label memories. Labels: memories (1 of 5).")
	p.Settle()
	invs := natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, "wb.cmd."+labels.Name)
	if len(invs) != 1 {
		t.Fatalf("%d invocations of labels", len(invs))
	}
	inv := invs[0]
	before := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
	if len(before) != 1 {
		t.Fatalf("%d replies before the redelivery", len(before))
	}
	actionstest.PublishAs(t, p.Client.JS, &inv, inv.ID+"-again")
	p.Settle()
	if n := len(natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, "wb.cmd."+labels.Name)); n != 2 {
		t.Fatalf("%d invocations of labels after the redelivery, want the two copies", n)
	}
	// The outbox answered the copy: the invocation ran once.
	if n := labelCount(p); n != 1 {
		t.Errorf("%d labels after a redelivery", n)
	}
	community := p.Community(pipelinetest.DefaultChannel)
	log, err := p.Store.AuditLog(ctx, community.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	adds := 0
	for _, e := range log {
		if e.Action == "label.add" {
			adds++
		}
	}
	if adds != 1 {
		t.Errorf("%d label.add audit entries", adds)
	}
	after := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].Text != before[0].Text {
		t.Errorf("replies after the redelivery: %+v, before: %+v", after, before)
	}
	// And the command still says "already" when typed again.
	expect(t, p, mod, modRole, "!label add @bob memories", "bob has the label memories already.")
}

// TestLabelsAcrossChannels: labels belong to the community, so a channel
// claimed into it sees them (and its invocations carry them).
func TestLabelsAcrossChannels(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	side := func(user, role, text string) string {
		t.Helper()
		return strings.Join(p.SayChat(pipelinetest.Chat{Channel: "side", User: user, Role: role, Text: text}), "\n")
	}
	expect(t, p, mod, modRole, "!label add @bob memories", "bob now has the label memories. Labels: memories (1 of 5).")
	// Before the claim "side" is a provisional community of its own, and
	// shares nothing.
	if got := side("bob", "", "!mylabels"); got != "labels=[]" {
		t.Fatalf("on side before the claim: %q", got)
	}
	old := p.Community("side")
	main := p.Community(pipelinetest.DefaultChannel)
	if old.ID == main.ID {
		t.Fatal("side and main share a community before the claim")
	}
	p.Must(p.Store.ClaimChannel(ctx, "test", main.ID, store.Channel{Platform: schemas.PlatformConsole, ChannelID: "side", Name: "side"}))
	// What the portal announces after a claim; routers forget both communities.
	for _, id := range []string{old.ID, main.ID} {
		p.Must(p.Client.NC.Publish(schemas.ControlCommunity(id), []byte(`"`+id+`"`)))
	}
	p.Must(p.Client.NC.Flush())
	// The notice reaches the router on its own connection; allow it a moment.
	natstest.Eventually(t, pipelinetest.Wait, "side to be in main's community", func() bool {
		return side("bob", "", "!mylabels") == "labels=[memories]"
	})
	if got := side("carol", "", "!labels @bob"); got != "bob's labels: memories" {
		t.Errorf("!labels @bob on side: %q", got)
	}
	// A change made on side shows on main at once.
	if got := side(mod, modRole, "!label add @bob vip"); got != "bob now has the label vip. Labels: memories, vip (2 of 5)." {
		t.Errorf("add on side: %q", got)
	}
	expect(t, p, "bob", "", "!mylabels", "labels=[memories,vip]")
}
