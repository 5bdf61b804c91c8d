package alias_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

const (
	mod    = "moderator"
	member = ""
)

// echo is a stand-in for the modules aliases point at: !so (everyone, also
// !shoutout) answers with exactly the text it got, !modonly (moderators)
// likewise, marked, so an alias's expansion shows in chat.
func echo(*store.Store) actions.Module {
	return actions.Module{
		Manifest: schemas.Manifest{Name: "echo", Version: "1.0.0", DefaultEnabled: true, Commands: []schemas.CommandSpec{
			{Name: "so", Aliases: []string{"shoutout"}, Permission: schemas.PermissionEveryone},
			{Name: "modonly", Permission: string(schemas.RoleModerator)},
		}},
		Handle: func(_ context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
			text := inv.ArgText
			if text == "" {
				text = "(nothing)"
			}
			if inv.Command == "modonly" {
				text = "modonly: " + text
			}
			return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: "echo",
				Replies: []schemas.ReplyText{{Text: text}}}, nil
		},
	}
}

// weather is an external module's manifest: reached with '#', served
// outside WaddleBot (here by nobody; its invocations stay in WB_COMMANDS).
var weather = schemas.Manifest{Name: "weatherext", Version: "1.0.0", External: true, DefaultEnabled: true,
	Commands: []schemas.CommandSpec{{Name: "weather", Permission: schemas.PermissionEveryone}}}

func start(t *testing.T) *pipelinetest.Pipeline {
	t.Helper()
	p := pipelinetest.Start(t, pipelinetest.Options{Modules: []func(*store.Store) actions.Module{
		func(st *store.Store) actions.Module { return alias.New(alias.Config{Store: st}) },
		echo,
	}})
	if _, err := p.Store.UpsertManifest(context.Background(), weather, false); err != nil {
		t.Fatal(err)
	}
	// The router learns of the external module now, not at its cache's TTL.
	p.Must(p.Client.NC.Publish(schemas.ControlRegistry, []byte(weather.Name)))
	p.Must(p.Client.NC.Flush())
	return p
}

// say expects exactly one reply part.
func say(t *testing.T, p *pipelinetest.Pipeline, user, role, text string) string {
	t.Helper()
	parts := p.Say(user, role, text)
	if len(parts) != 1 {
		t.Fatalf("%q: %d reply parts %q, want 1", text, len(parts), parts)
	}
	return parts[0]
}

func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := say(t, p, user, role, text); got != want {
		t.Errorf("%s: %q\n got %q\nwant %q", user, text, got, want)
	}
}

func TestAddUseShowListRemove(t *testing.T) {
	p := start(t)
	expect(t, p, "mod", mod, "!alias add hug !so {1|nobody} gets a hug from {user}",
		"Alias !hug added: !so {1|nobody} gets a hug from {user}")
	expect(t, p, "alice", member, "!hug bob", "bob gets a hug from alice")
	expect(t, p, "alice", member, "!HUG", "nobody gets a hug from alice")

	show := say(t, p, "mod", mod, "!alias show hug")
	if !regexp.MustCompile(`^Alias !hug: !so \{1\|nobody\} gets a hug from \{user\} · added by mod on \d{4}-\d\d-\d\d \d\d:\d\d UTC · runs not counted \(no \{count\}\)$`).MatchString(show) {
		t.Errorf("show: %q", show)
	}
	expect(t, p, "mod", mod, "!alias show !hug", show)
	expect(t, p, "mod", mod, "!alias list", "Aliases (1): !hug → !so {1|nobody} gets a hug from {user}")

	// Written without a prefix, the target reads the same; core tells of both.
	expect(t, p, "mod", mod, "!alias add lurk so {user} lurks", "Alias !lurk added: !so {user} lurks")
	expect(t, p, "alice", member, "!lurk", "alice lurks")
	expect(t, p, "alice", member, "!commands", "alias: !alias | core: !about !commands !help !ping | echo: !modonly !so | weatherext: #weather | aliases: !hug !lurk")
	expect(t, p, "alice", member, "!help hug", "!hug is an alias for !so {1|nobody} gets a hug from {user}")
	expect(t, p, "alice", member, "!help !lurk", "!lurk is an alias for !so {user} lurks")
	expect(t, p, "mod", mod, "!alias list", "Aliases (2): !hug → !so {1|nobody} gets a hug from {user} · !lurk → !so {user} lurks")

	expect(t, p, "mod", mod, "!alias remove hug", "Alias !hug removed.")
	p.Silent("alice", member, "!hug bob")
	expect(t, p, "mod", mod, "!alias remove hug", "There is no alias !hug. !alias list shows them.")
	expect(t, p, "mod", mod, "!alias show hug", "There is no alias !hug. !alias list shows them.")
	expect(t, p, "alice", member, "!help hug", "No command named hug.")
	expect(t, p, "mod", mod, "!alias delete !lurk", "Alias !lurk removed.")
	expect(t, p, "mod", mod, "!alias list", "No aliases yet. !alias add <name> <command…> makes one.")

	community := p.Community(pipelinetest.DefaultChannel).ID
	if n := p.Count(`SELECT count(*) FROM audit_log WHERE community_id = $1 AND action IN ('alias.add', 'alias.remove') AND actor = 'console:mod'`, community); n != 4 {
		t.Errorf("%d audit entries, want 4 (two adds, two removes)", n)
	}
}

func TestOnlyModeratorsManageAliases(t *testing.T) {
	p := start(t)
	for _, role := range []string{"", "member", "subscriber", "vip"} {
		p.Silent("alice", role, "!alias add hug !so hi")
		p.Silent("alice", role, "!alias list")
	}
	if n := p.Count(`SELECT count(*) FROM aliases`); n != 0 {
		t.Fatalf("%d aliases made by non-moderators", n)
	}
	expect(t, p, "owner", "broadcaster", "!alias add hug !so hi", "Alias !hug added: !so hi")
	// The alias is the target's permission, no more: members reach !so
	// through it, and never !modonly.
	expect(t, p, "alice", member, "!hug", "hi")
	expect(t, p, "mod", mod, "!alias add boss modonly {args}", "Alias !boss added: !modonly {args}")
	p.Silent("alice", member, "!boss now")
	p.Silent("alice", "vip", "!boss now")
	expect(t, p, "mod", mod, "!boss now", "modonly: now")
}

func TestRefusals(t *testing.T) {
	p := start(t)
	expect(t, p, "mod", mod, "!alias add hug !so hi", "Alias !hug added: !so hi")
	usage := "Usage: !alias add <name> <command…> | remove <name> | list [page] | show <name>"
	addUsage := "Usage: !alias add <name> <command…>, for example !alias add q !quote {1|random}"
	names := "Alias names are 1 to 32 of a-z, 0-9, - and _, starting with a letter"
	tenKB := strings.Repeat("x", 10_000)
	for _, tt := range []struct{ text, want string }{
		{"!alias", usage},
		{"!alias dance", `!alias has no "dance". ` + usage},
		{"!alias add", addUsage},
		{"!alias add hug2", addUsage},
		{"!alias add HUG !so", "Alias names are lower case: hug, not HUG."},
		{"!alias add hug! !so", names + `: "hug!" is not one.`},
		{"!alias add hüg !so", names + `: "hüg" is not one.`},
		{"!alias add 1up !so", "An alias name starts with a letter: !1up would read as chat."},
		{"!alias add -x !so", "An alias name starts with a letter: !-x would read as chat."},
		{"!alias add " + strings.Repeat("a", 33) + " !so", names + ": that name has 33 characters."},
		{"!alias add ! !so", names + "."},
		{"!alias add hug !so again", "Alias !hug exists already (!so hi); remove it first with !alias remove hug."},
		{"!alias add ping !so", "!ping is already a command (module core): pick another name."},
		{"!alias add so !ping", "!so is already a command (module echo): pick another name."},
		{"!alias add shoutout !ping", "!shoutout is already a command (module echo): pick another name."},
		{"!alias add alias !so", "!alias is already a command (module alias): pick another name."},
		{"!alias add weather !so", "#weather is already a command (module weatherext): pick another name."},
		{"!alias add x !nosuch", "There is no command or alias !nosuch. !commands lists what there is."},
		{"!alias add x #nosuch", "There is no external command #nosuch. !commands lists what there is."},
		{"!alias add x #so", "There is no external command #so. !commands lists what there is."},
		{"!alias add x !alias list", "An alias cannot run !alias."},
		{"!alias add x alias remove hug", "An alias cannot run !alias."},
		{"!alias add x {1}", "The command must start with a command's name, like !quote {1|random} or #weather {1|berlin}."},
		{"!alias add x so{1}", "The command must start with a command's name, like !quote {1|random} or #weather {1|berlin}."},
		{"!alias add x !", "The command must start with a command's name, like !quote {1|random} or #weather {1|berlin}."},
		{"!alias add x !so " + strings.Repeat("é", 398), "That command is 401 characters long; an alias holds at most 400."},
		{"!alias add x !so " + tenKB, "That command is 10003 characters long; an alias holds at most 400."},
		{"!alias add x !so a\x00b", "The command may not contain control characters (it has U+0000)."},
		{"!alias add x !so a\x07b", "The command may not contain control characters (it has U+0007)."},
		{"!alias add x !so a\x1b[31mred", "The command may not contain control characters (it has U+001B)."},
		{"!alias add x !so one\ntwo", "An alias is one line: the command may not contain line breaks."},
		{"!alias remove", "Usage: !alias remove <name>"},
		{"!alias remove hug now", "Usage: !alias remove <name>"},
		{"!alias remove Hug", "Alias names are lower case: hug, not Hug."},
		{"!alias remove nope", "There is no alias !nope. !alias list shows them."},
		{"!alias show", "Usage: !alias show <name>"},
		{"!alias show so", "There is no alias !so. !alias list shows them."},
		{"!alias list two", "Usage: !alias list [page], for example !alias list 2"},
		{"!alias list 0", "Usage: !alias list [page], for example !alias list 2"},
		{"!alias list 2", "There is only 1 page."},
	} {
		expect(t, p, "mod", mod, tt.text, tt.want)
	}
	if n := p.Count(`SELECT count(*) FROM aliases`); n != 1 {
		t.Errorf("%d aliases after the refusals, want 1", n)
	}

	// Exactly the limit is fine, counted in characters, not bytes.
	long := "so " + strings.Repeat("é", alias.MaxTarget-3)
	expect(t, p, "mod", mod, "!alias add long !"+long, "Alias !long added: !"+long)
	var stored string
	p.Must(p.Store.Pool().QueryRow(context.Background(), `SELECT target FROM aliases WHERE name = 'long'`).Scan(&stored))
	if stored != long || utf8.RuneCountInString(stored) != alias.MaxTarget {
		t.Errorf("stored %d characters, want the %d typed", utf8.RuneCountInString(stored), alias.MaxTarget)
	}
}

func TestChains(t *testing.T) {
	p := start(t)
	expect(t, p, "mod", mod, "!alias add a so A:{args}", "Alias !a added: !so A:{args}")
	expect(t, p, "mod", mod, "!alias add b !a B:{args}", "Alias !b added: !a B:{args}")
	expect(t, p, "mod", mod, "!alias add c b C:{args}", "Alias !c added: !b C:{args}")
	expect(t, p, "alice", member, "!c x", "A:B:C:x")
	expect(t, p, "mod", mod, "!alias add d c D",
		"Too many aliases in a row: !d → !c → !b → !a → !so. An alias may go through at most 3 aliases, itself included.")
	expect(t, p, "mod", mod, "!alias add self self", "That would make a loop: !self → !self. An alias must lead to a command.")

	// Removing !a leaves !b and !c dead ends; show says so, and nothing
	// may be built on them.
	expect(t, p, "mod", mod, "!alias remove a", "Alias !a removed. !b and !c used it and no longer work.")
	p.Silent("alice", member, "!c x")
	if got := say(t, p, "mod", mod, "!alias show c"); !strings.HasSuffix(got, " · does not run: !a is neither a command nor an alias (!c → !b → !a)") {
		t.Errorf("show c: %q", got)
	}
	expect(t, p, "mod", mod, "!alias add e b",
		"That leads nowhere: !e → !b → !a; !a is neither a command nor an alias. Fix or remove !b first.")
	// a → b would close the loop a → b → a.
	expect(t, p, "mod", mod, "!alias add a b", "That would make a loop: !a → !b → !a. An alias must lead to a command.")
	// a → f → so is fine for a, but !c would go through four aliases.
	expect(t, p, "mod", mod, "!alias add f so F:{args}", "Alias !f added: !so F:{args}")
	expect(t, p, "mod", mod, "!alias add a f",
		"That would make !c go through too many aliases: !c → !b → !a → !f → !so. An alias may go through at most 3 aliases, itself included.")
	expect(t, p, "mod", mod, "!alias add a so A2:{args}", "Alias !a added: !so A2:{args}")
	expect(t, p, "alice", member, "!c y", "A2:B:C:y")

	// An alias of an external command: the router sends it to the
	// external module's subject with the expansion.
	expect(t, p, "mod", mod, "!alias add wx #weather {1|berlin}", "Alias !wx added: #weather {1|berlin}")
	p.Silent("alice", member, "!wx")
	p.Silent("alice", member, "!wx oslo")
	invs := natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, "wb.cmd.weatherext")
	if len(invs) != 2 || invs[0].Command != "weather" || invs[0].Invoked != "wx" || invs[0].ArgText != "berlin" || invs[1].ArgText != "oslo" {
		t.Errorf("external invocations %+v", invs)
	}
	expect(t, p, "alice", member, "!help wx", "!wx is an alias for #weather {1|berlin}")

	// A module the community switched off: the alias may wait for it, and
	// says so.
	community := p.Community(pipelinetest.DefaultChannel).ID
	p.Must(p.Store.SetModule(context.Background(), "test", community, weather.Name, false, nil))
	expect(t, p, "mod", mod, "!alias add wx2 #weather",
		"Alias !wx2 added: #weather (module weatherext is off here: it answers once the module is on)")
	if got := say(t, p, "mod", mod, "!alias show wx"); !strings.HasSuffix(got, " · runs not counted (no {count}) · does not run: module weatherext is off here") {
		t.Errorf("show wx: %q", got)
	}
	if got := say(t, p, "mod", mod, "!alias show c"); strings.Contains(got, "does not run") {
		t.Errorf("show c: %q", got)
	}
}

func TestVariablesAndInjectionRoundTrip(t *testing.T) {
	p := start(t)
	expect(t, p, "mod", mod, "!alias add v !so u={user} c={channel} a=[{args}] 1={1} 2={2|two} 9={9|nine} x={unknown} {",
		"Alias !v added: !so u={user} c={channel} a=[{args}] 1={1} 2={2|two} 9={9|nine} x={unknown} {")
	expect(t, p, "bob", member, `!v "hello world" b`, `u=bob c=main a=["hello world" b] 1=hello world 2=b 9=nine x={unknown} {`)
	expect(t, p, "bob", member, "!v", "u=bob c=main a=[] 1= 2=two 9=nine x={unknown} {")

	// Text that looks like SQL, templates, an RTL override, emoji, quotes and
	// backslashes: stored, shown and run byte for byte.
	nasty := "'; drop table aliases; -- {{ .Secret }} \u202eevil\u202c 🐧👩‍👩‍👧 \"quoted\" \\back %s $1 <b>"
	expect(t, p, "mod", mod, "!alias add nasty !so "+nasty, "Alias !nasty added: !so "+nasty)
	expect(t, p, "alice", member, "!nasty", nasty)
	if got := say(t, p, "mod", mod, "!alias show nasty"); !strings.HasPrefix(got, "Alias !nasty: !so "+nasty+" · added by mod on ") {
		t.Errorf("show: %q", got)
	}
	var stored string
	p.Must(p.Store.Pool().QueryRow(context.Background(), `SELECT target FROM aliases WHERE name = 'nasty'`).Scan(&stored))
	if stored != "so "+nasty {
		t.Errorf("stored %q", stored)
	}
	// What users type into an alias is passed on as typed too.
	expect(t, p, "mod", mod, "!alias add echo2 so >{args}<", "Alias !echo2 added: !so >{args}<")
	expect(t, p, "alice", member, "!echo2 "+nasty, ">"+nasty+"<")
	if n := p.Count(`SELECT count(*) FROM aliases`); n != 3 {
		t.Errorf("%d aliases, want 3", n)
	}
}

func TestCountOncePerInvocation(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	expect(t, p, "mod", mod, "!alias add cnt so run {count} by {user}", "Alias !cnt added: !so run {count} by {user}")
	expect(t, p, "mod", mod, "!alias add cnt2 cnt", "Alias !cnt2 added: !cnt")
	for i := 1; i <= 3; i++ {
		expect(t, p, "alice", member, "!cnt", fmt.Sprintf("run %d by alice", i))
	}
	// Counted under the alias typed: !cnt2 has its own count.
	expect(t, p, "bob", member, "!cnt2", "run 1 by bob")

	// The router sees the second !cnt again (a platform retry past the
	// events stream's duplicate window): it gets the count it got the first
	// time, and the invocation is the one already dispatched.
	var second *jetstream.RawStreamMsg
	seen := 0
	for _, m := range natstest.Messages(t, p.Client.JS, schemas.StreamEvents, "") {
		var ev schemas.Event
		p.Must(json.Unmarshal(m.Data, &ev))
		if ev.Text == "!cnt" {
			if seen++; seen == 2 {
				second = m
			}
		}
	}
	if second == nil {
		t.Fatal("the second !cnt is not in WB_EVENTS")
	}
	echoed := len(natstest.Messages(t, p.Client.JS, schemas.StreamCommands, "wb.cmd.echo"))
	if _, err := p.Client.JS.Publish(ctx, second.Subject, second.Data, jetstream.WithMsgID(second.Header.Get(jetstream.MsgIDHeader)+"-again")); err != nil {
		t.Fatal(err)
	}
	p.Settle()
	if got := len(natstest.Messages(t, p.Client.JS, schemas.StreamCommands, "wb.cmd.echo")); got != echoed {
		t.Errorf("WB_COMMANDS for echo holds %d invocations after the redelivery, want %d", got, echoed)
	}
	community := p.Community(pipelinetest.DefaultChannel).ID
	if n := p.Count(`SELECT runs FROM aliases WHERE community_id = $1 AND name = 'cnt'`, community); n != 3 {
		t.Errorf("cnt ran %d times by its count, want 3", n)
	}
	if n := p.Count(`SELECT count(*) FROM alias_runs WHERE community_id = $1`, community); n != 4 {
		t.Errorf("%d runs recorded, want 4", n)
	}
	expect(t, p, "alice", member, "!cnt", "run 4 by alice")

	if got := say(t, p, "mod", mod, "!alias show cnt"); !strings.HasSuffix(got, " · ran 4 times") {
		t.Errorf("show cnt: %q", got)
	}
	if got := say(t, p, "mod", mod, "!alias show cnt2"); !strings.HasSuffix(got, " · ran 1 time") {
		t.Errorf("show cnt2: %q", got)
	}
}

func TestRedeliveredAddIsNotRunAgain(t *testing.T) {
	p := start(t)
	expect(t, p, "mod", mod, "!alias add hug !so hi", "Alias !hug added: !so hi")
	var add *schemas.Invocation
	for _, inv := range natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, "wb.cmd.alias") {
		if inv.ArgText == "add hug !so hi" {
			add = &inv
		}
	}
	if add == nil {
		t.Fatal("the !alias add invocation is not in WB_COMMANDS")
	}
	before := actionstest.RepliesTo(t, p.Client.JS, add.ID)
	actionstest.PublishAs(t, p.Client.JS, add, add.ID+"-again")
	p.Settle()
	after := actionstest.RepliesTo(t, p.Client.JS, add.ID)
	if len(before) != 1 || len(after) != 1 || after[0].ID != before[0].ID || after[0].Text != "Alias !hug added: !so hi" {
		t.Errorf("replies before %+v, after %+v", before, after)
	}
	if n := p.Count(`SELECT count(*) FROM aliases`); n != 1 {
		t.Errorf("%d aliases, want 1", n)
	}
	if n := p.Count(`SELECT count(*) FROM audit_log WHERE action = 'alias.add'`); n != 1 {
		t.Errorf("%d audit entries, want 1", n)
	}
}

func TestLongListIsPaged(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	expect(t, p, "mod", mod, "!alias add aaa so first", "Alias !aaa added: !so first")
	community := p.Community(pipelinetest.DefaultChannel).ID
	const total = 80
	for i := range total - 1 {
		name := fmt.Sprintf("hug-%02d", i)
		target := fmt.Sprintf("so {1|nobody} gets hug number %02d with a long tail of words that goes on and on", i)
		p.Must(p.Store.AddAlias(ctx, p.Store.Pool(), store.Alias{CommunityID: community, Name: name, Target: target, CreatedBy: "test"}))
	}
	first := say(t, p, "mod", mod, "!alias list")
	m := regexp.MustCompile(`\(page 1/(\d+); next: !alias list 2\)$`).FindStringSubmatch(first)
	if m == nil || !strings.HasPrefix(first, fmt.Sprintf("Aliases (%d): !aaa → !so first · !hug-00 → ", total)) {
		t.Fatalf("page 1: %q", first)
	}
	var pages int
	fmt.Sscan(m[1], &pages)
	seen := map[string]int{}
	limit := schemas.TextLimit(schemas.PlatformConsole)
	for n := 1; n <= pages; n++ {
		page := first
		if n > 1 {
			page = say(t, p, "mod", mod, fmt.Sprintf("!alias list %d", n))
		}
		if c := utf8.RuneCountInString(page); c > limit {
			t.Errorf("page %d is %d characters, over %d", n, c, limit)
		}
		if !strings.Contains(page, fmt.Sprintf("(page %d/%d", n, pages)) {
			t.Errorf("page %d: %q", n, page)
		}
		for _, name := range regexp.MustCompile(`!(aaa|hug-\d\d) →`).FindAllStringSubmatch(page, -1) {
			seen[name[1]]++
		}
		// Long targets are clipped in the list; !alias show has them whole.
		if strings.Contains(page, "goes on and on") || !strings.Contains(page, "…") {
			t.Errorf("page %d does not clip long targets: %q", n, page)
		}
	}
	if len(seen) != total {
		t.Errorf("%d aliases listed over %d pages, want %d", len(seen), pages, total)
	}
	for name, k := range seen {
		if k != 1 {
			t.Errorf("%s listed %d times", name, k)
		}
	}
	expect(t, p, "mod", mod, fmt.Sprintf("!alias list %d", pages+1), fmt.Sprintf("There are only %d pages.", pages))
}

func TestCommunityPrefix(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	c, err := p.Store.CreateCommunity(ctx, "test", store.NewCommunity{Name: "tildes", Prefix: "?"})
	p.Must(err)
	p.Must(p.Store.ClaimChannel(ctx, "test", c.ID, store.Channel{Platform: schemas.PlatformConsole, ChannelID: "tilde", Name: "tilde"}))
	in := func(user, role, text, want string) {
		t.Helper()
		got := p.SayChat(pipelinetest.Chat{Channel: "tilde", User: user, Role: role, Text: text})
		if len(got) != 1 || got[0] != want {
			t.Errorf("%q\n got %q\nwant %q", text, got, want)
		}
	}
	in("mod", mod, "?alias add hug ?so {1|nobody}", "Alias ?hug added: ?so {1|nobody}")
	in("mod", mod, "?alias add hug2 !so {1|you}", "Alias ?hug2 added: ?so {1|you}")
	in("mod", mod, "?alias add ?hug3 so", "Alias ?hug3 added: ?so")
	in("alice", member, "?hug bob", "bob")
	in("alice", member, "?hug2", "you")
	in("alice", member, "?help hug", "?hug is an alias for ?so {1|nobody}")
	in("mod", mod, "?alias list", "Aliases (3): ?hug → ?so {1|nobody} · ?hug2 → ?so {1|you} · ?hug3 → ?so")
	// Aliases belong to their community.
	p.Silent("alice", member, "!hug bob")
	expect(t, p, "mod", mod, "!alias list", "No aliases yet. !alias add <name> <command…> makes one.")
}
