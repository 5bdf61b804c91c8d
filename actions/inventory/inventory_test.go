package inventory_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const when = `[A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}`

// TestLendingThroughChat walks one item through its life: added, merged,
// lent out, asked about, refused removal while out, returned, removed.
func TestLendingThroughChat(t *testing.T) {
	t.Parallel()
	p := start(t)
	mod := "moderator"

	expect(t, p, "bob", "", "!inv list", "The inventory is empty. Moderators add items with !inv add <item> [qty] [labels…].")
	expect(t, p, "alice", mod, "!inv add mic 3 audio Stage", "Added mic ×3 [audio, stage].")
	expect(t, p, "alice", mod, "!inv add MIC 2 live audio", "mic was already there: added 2, now mic ×5 [audio, live, stage].")
	expect(t, p, "alice", mod, `!inventory add "xlr cable" 12 audio`, "Added xlr cable ×12 [audio].")
	expect(t, p, "bob", "", "!inv list", "Inventory: mic ×5 [audio, live, stage] · xlr cable ×12 [audio]")

	expect(t, p, "alice", mod, "!inv checkout mic @Bob", "Checked out 1 mic to @Bob; 4 of 5 left.")
	expect(t, p, "alice", "broadcaster", "!inv checkout Mic @carol", "Checked out 1 mic to @carol; 3 of 5 left.")
	expect(t, p, "alice", mod, "!inv checkout mic @bob", "Checked out 1 mic to @bob; 2 of 5 left.")
	expect(t, p, "bob", "", "!inv list", "Inventory: mic ×5 (3 out) [audio, live, stage] · xlr cable ×12 [audio]")
	expect(t, p, "bob", "", "!inv list out", "Checked out: mic ×5 (3 out) [audio, live, stage]")
	expect(t, p, "bob", "", "!inv list available", "Available: mic ×5 (3 out) [audio, live, stage] · xlr cable ×12 [audio]")

	status := p.SayText("bob", "", "!inv status MIC")
	want := regexp.MustCompile(`^mic: 2 of 5 available \[audio, live, stage\]\. Recent: ` +
		when + ` alice checked out 1 to @bob; ` + when + ` alice checked out 1 to @carol; ` + when + ` alice checked out 1 to @Bob\. ` +
		`Out: @bob ×2 since ` + when + ` · @carol since ` + when + `$`)
	if !want.MatchString(status) {
		t.Errorf("status: %q", status)
	}

	expect(t, p, "alice", mod, "!inv remove mic",
		"Can't remove mic: 3 of 5 are checked out; check them in first (!inv status mic shows who has them).")
	expect(t, p, "alice", mod, "!inv checkin mic @dave", "@dave holds no mic. It is out to @bob ×2, @carol.")
	expect(t, p, "carol", mod, "!inv checkin mic", "@carol checked in 1 mic; 3 of 5 available.")
	// The unit held longest comes back first: the one lent to "Bob".
	expect(t, p, "alice", mod, "!inv checkin mic @BOB", "@Bob checked in 1 mic; 4 of 5 available.")
	expect(t, p, "alice", mod, "!inv remove mic",
		"Can't remove mic: 1 of 5 is checked out; check them in first (!inv status mic shows who has them).")
	expect(t, p, "alice", mod, "!inv checkin mic @bob", "@bob checked in 1 mic; 5 of 5 available.")
	expect(t, p, "alice", mod, "!inv checkin mic @bob", "No mic is checked out.")

	status = p.SayText("bob", "", "!inv status mic")
	want = regexp.MustCompile(`^mic: 5 of 5 available \[audio, live, stage\]\. Recent: ` +
		when + ` alice checked in 1 from @bob; ` + when + ` alice checked in 1 from @Bob; ` + when + ` carol checked in 1 from @carol\. None checked out\.$`)
	if !want.MatchString(status) {
		t.Errorf("status after check-ins: %q", status)
	}

	// The last unit: one checkout, then nothing left.
	expect(t, p, "alice", mod, "!inv add cam", "Added cam ×1.")
	expect(t, p, "alice", mod, "!inv checkout cam @erin", "Checked out 1 cam to @erin; 0 of 1 left.")
	expect(t, p, "alice", mod, "!inv checkout cam @frank",
		"No cam is available: all 1 is checked out (!inv status cam shows who has them).")
	expect(t, p, "bob", "", "!inv list available", "Available: mic ×5 [audio, live, stage] · xlr cable ×12 [audio]")

	expect(t, p, "alice", mod, "!inv remove MIC", "Removed mic (5 units).")
	expect(t, p, "bob", "", "!inv status mic", "There is no item called mic. Try !inv search mic or !inv list.")
	expect(t, p, "bob", "", "!inv list", "Inventory: cam ×1 (1 out) · xlr cable ×12 [audio]")

	// Every change is in the history, which outlives the item.
	type row struct {
		action string
		qty    int
	}
	rows, err := p.Store.Pool().Query(ctx(t), `SELECT action, quantity FROM inventory_history WHERE item_name = 'mic' ORDER BY id`)
	p.Must(err)
	var got []string
	for rows.Next() {
		var r row
		p.Must(rows.Scan(&r.action, &r.qty))
		got = append(got, fmt.Sprintf("%s %d", r.action, r.qty))
	}
	p.Must(rows.Err())
	wantHist := "add 3,add 2,checkout 1,checkout 1,checkout 1,checkin 1,checkin 1,checkin 1,remove 5"
	if strings.Join(got, ",") != wantHist {
		t.Errorf("history %v, want %s", got, wantHist)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_history WHERE item_id IS NULL AND item_name = 'mic'`); n != 9 {
		t.Errorf("%d history lines of the removed item kept, want 9", n)
	}
}

// TestWhoMayWrite: moderators and the inventory label write; everyone
// reads; the router lets everyone reach the module.
func TestWhoMayWrite(t *testing.T) {
	t.Parallel()
	p := start(t)
	expect(t, p, "alice", "moderator", "!inv add mic 2", "Added mic ×2.")

	for _, role := range []string{"", "member", "subscriber", "vip"} {
		for cmd, what := range map[string]string{
			"!inv add cable":           "add items",
			"!inv remove mic":          "remove items",
			"!inv checkout mic @bob":   "check items out",
			"!inv checkin mic @bob":    "check items in",
			"!inv unlabel mic audio":   "change labels",
			"!inv add mic 5 audio x y": "add items",
		} {
			expect(t, p, "bob", role, cmd, "Only moderators and people with the inventory label can "+what+".")
		}
		expect(t, p, "bob", role, "!inv list", "Inventory: mic ×2")
		expect(t, p, "bob", role, "!inv search mi", `Items matching "mi": mic ×2`)
		if got := p.SayText("bob", role, "!inv status mic"); !strings.HasPrefix(got, "mic: 2 of 2 available.") {
			t.Errorf("status for %q: %q", role, got)
		}
	}
	if n := p.Count(`SELECT count(*) FROM inventory_items`); n != 1 {
		t.Errorf("%d items after refusals, want 1", n)
	}

	// A user with the inventory label writes without being a moderator.
	community := p.Community("main")
	p.Must(p.Store.AddLabel(ctx(t), p.Store.Pool(), community.ID, schemas.PlatformConsole, "dana", "inventory", "test", 5))
	expect(t, p, "dana", "", "!inv add cable 4 audio", "Added cable ×4 [audio].")
	expect(t, p, "dana", "", "!inv checkout cable @dana", "Checked out 1 cable to @dana; 3 of 4 left.")
	expect(t, p, "dana", "", "!inv checkin cable", "@dana checked in 1 cable; 4 of 4 available.")
	expect(t, p, "dana", "", "!inv remove cable", "Removed cable (4 units).")
	// Another label is no writer's label.
	p.Must(p.Store.AddLabel(ctx(t), p.Store.Pool(), community.ID, schemas.PlatformConsole, "eve", "memories", "test", 5))
	expect(t, p, "eve", "", "!inv add cable", "Only moderators and people with the inventory label can add items.")
}

// TestBadSyntax answers every malformed command with what to type instead.
func TestBadSyntax(t *testing.T) {
	t.Parallel()
	p := start(t)
	mod := "moderator"
	help := "Inventory: !inv add <item> [qty] [labels…], !inv remove <item>, !inv checkout <item> @user, " +
		"!inv checkin <item> [@user], !inv list [available|out], !inv search <term>, !inv status <item>, !inv unlabel <item> <label…>."
	expect(t, p, "bob", "", "!inv", help)
	expect(t, p, "bob", "", "!inv help", help)
	expect(t, p, "bob", "", "!inv frobnicate", "frobnicate is not something !inv does. "+help)

	expect(t, p, "alice", mod, "!inv add", `Usage: !inv add <item> [qty] [labels…] (quote names with spaces: "xlr cable")`)
	expect(t, p, "alice", mod, "!inv add mic 0", `The quantity must be a whole number from 1 to 100,000 (not "0").`)
	expect(t, p, "alice", mod, "!inv add mic -2", `The quantity must be a whole number from 1 to 100,000 (not "-2").`)
	expect(t, p, "alice", mod, "!inv add mic 1.5", `The quantity must be a whole number from 1 to 100,000 (not "1.5").`)
	expect(t, p, "alice", mod, "!inv add mic 100001", `The quantity must be a whole number from 1 to 100,000 (not "100001").`)
	expect(t, p, "alice", mod, "!inv add mic 2 Audio!", `"Audio!" is not a label: labels are 1 to 32 characters of a-z, 0-9, _ and -.`)
	expect(t, p, "alice", mod, "!inv add mic 2 "+strings.Repeat("a", 33), `"`+strings.Repeat("a", 33)+`" is not a label: labels are 1 to 32 characters of a-z, 0-9, _ and -.`)
	expect(t, p, "alice", mod, "!inv add mic 2 a b c d e f", "An item can have at most 5 labels; that is 6.")
	// A label that is a number follows a quantity.
	expect(t, p, "alice", mod, "!inv add mic 2 a b c d 2024", "Added mic ×2 [2024, a, b, c, d].")
	expect(t, p, "alice", mod, "!inv add mic 1 e",
		"mic has 5 labels (2024, a, b, c, d); 1 more would make 6, and an item can have at most 5. Drop one first: !inv unlabel mic <label>.")
	expect(t, p, "alice", mod, "!inv add mic 99999", "mic has 2; adding 99999 would pass the limit of 100,000 per item.")
	// Labels it has already do not count twice.
	expect(t, p, "alice", mod, "!inv add mic 1 a b", "mic was already there: added 1, now mic ×3 [2024, a, b, c, d].")
	expect(t, p, "alice", mod, "!inv unlabel mic a zz", "Took a off mic; labels now 2024, b, c, d.")
	expect(t, p, "alice", mod, "!inv unlabel mic zz", "mic has no label zz; its labels are 2024, b, c, d.")
	expect(t, p, "alice", mod, "!inv add mic 1 e", "mic was already there: added 1, now mic ×4 [2024, b, c, d, e].")
	expect(t, p, "alice", mod, "!inv unlabel mic", "Usage: !inv unlabel <item> <label…>")
	expect(t, p, "alice", mod, "!inv unlabel nothing a", "There is no item called nothing. Try !inv search nothing or !inv list.")
	if n := p.Count(`SELECT quantity FROM inventory_items WHERE name = 'mic'`); n != 4 {
		t.Errorf("mic has %d after refused adds, want 4", n)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_history`); n != 3 {
		t.Errorf("%d history lines, want 3 (refusals record nothing)", n)
	}

	expect(t, p, "alice", mod, "!inv remove", "Usage: !inv remove <item>")
	expect(t, p, "alice", mod, "!inv remove big mic", `Item names with spaces need quotes: !inv remove "big mic"`)
	expect(t, p, "alice", mod, "!inv remove ghost", "There is no item called ghost. Try !inv search ghost or !inv list.")

	expect(t, p, "alice", mod, "!inv checkout", "Usage: !inv checkout <item> @user")
	expect(t, p, "alice", mod, "!inv checkout mic", "Usage: !inv checkout <item> @user")
	expect(t, p, "alice", mod, "!inv checkout mic bob", "Name who gets it with an @: !inv checkout mic @user.")
	expect(t, p, "alice", mod, "!inv checkout big mic @bob", `Item names with spaces need quotes: !inv checkout "big mic" @bob`)
	expect(t, p, "alice", mod, "!inv checkout mic @b!ob", `"@b!ob" is not a user: name one as @login.`)
	expect(t, p, "alice", mod, "!inv checkout ghost @bob", "There is no item called ghost. Try !inv search ghost or !inv list.")

	expect(t, p, "alice", mod, "!inv checkin", "Usage: !inv checkin <item> [@user]")
	expect(t, p, "alice", mod, "!inv checkin mic bob", "Name the holder with an @: !inv checkin mic @user.")
	expect(t, p, "alice", mod, `!inv checkin big mic @bob`, `Item names with spaces need quotes: !inv checkin "big mic" @bob`)
	expect(t, p, "alice", mod, "!inv checkin ghost", "There is no item called ghost. Try !inv search ghost or !inv list.")
	expect(t, p, "alice", mod, "!inv checkin mic", "No mic is checked out.")

	// Subcommands' other names.
	expect(t, p, "bob", "", "!inv ls", "Inventory: mic ×4 [2024, b, c, d, e]")
	expect(t, p, "bob", "", "!inv find 2024", `Items matching "2024": mic ×4 [2024, b, c, d, e]`)
	if got := p.SayText("bob", "", "!inv show mic"); !strings.HasPrefix(got, "mic: 4 of 4 available [2024, b, c, d, e]. Recent: ") {
		t.Errorf("show: %q", got)
	}
	expect(t, p, "alice", mod, "!inv return mic", "No mic is checked out.")

	expect(t, p, "bob", "", "!inv list everything", "Usage: !inv list [available|out] [page]")
	expect(t, p, "bob", "", "!inv list out out", "Usage: !inv list [available|out] [page]")
	expect(t, p, "bob", "", "!inv list 2", "There is only 1 page.")
	expect(t, p, "bob", "", "!inv search", "Usage: !inv search <term> [page]")
	expect(t, p, "bob", "", "!inv search zebra", `No item's name or label contains "zebra".`)
	expect(t, p, "bob", "", "!inv status", "Usage: !inv status <item> [page]")
	expect(t, p, "bob", "", "!inv status big mic", `Item names with spaces need quotes: !inv status "big mic"`)
	expect(t, p, "bob", "", "!inv status ghost", "There is no item called ghost. Try !inv search ghost or !inv list.")
	if n := p.Count(`SELECT count(*) FROM inventory_checkouts`); n != 0 {
		t.Errorf("%d checkouts after refusals", n)
	}
}

// TestPagedLists: a long inventory is paged to fit one console message,
// and search finds by name or label, with LIKE's wildcards taken literally.
func TestPagedLists(t *testing.T) {
	t.Parallel()
	p := start(t)
	const n = 60
	pad := strings.Repeat("x", 50)
	var events []*schemas.Event
	for i := range n {
		label := "odd"
		if i%2 == 0 {
			label = "even"
		}
		events = append(events, send(t, p, "alice", "moderator", fmt.Sprintf("!inv add item%02d-%s 2 %s", i, pad, label)))
	}
	p.Settle()
	for i, ev := range events {
		if got := repliesTo(t, p, ev.ID); len(got) != 1 || !strings.HasPrefix(got[0], "Added item") {
			t.Fatalf("add %d: %q", i, got)
		}
	}
	limit := schemas.TextLimit(schemas.PlatformConsole)
	var seen []string
	pages := 0
	for page := 1; ; page++ {
		parts := p.Say("bob", "", fmt.Sprintf("!inv list %d", page))
		if len(parts) != 1 {
			t.Fatalf("page %d came in %d parts", page, len(parts))
		}
		text := parts[0]
		if len([]rune(text)) > limit {
			t.Fatalf("page %d is %d characters, over %d", page, len([]rune(text)), limit)
		}
		if !strings.HasPrefix(text, "Inventory: ") {
			t.Fatalf("page %d: %q", page, text)
		}
		seen = append(seen, regexp.MustCompile(`item\d\d`).FindAllString(text, -1)...)
		pages++
		if !strings.Contains(text, "; next: ") {
			if !strings.HasSuffix(text, fmt.Sprintf("(page %d/%d)", page, page)) {
				t.Fatalf("last page %d: %q", page, text)
			}
			break
		}
		if !strings.Contains(text, fmt.Sprintf("next: !inv list %d)", page+1)) {
			t.Fatalf("page %d does not say how to get the next: %q", page, text)
		}
	}
	if pages < 2 || len(seen) != n {
		t.Fatalf("%d pages listed %d items, want all %d on 2 or more", pages, len(seen), n)
	}
	for i, name := range seen {
		if name != fmt.Sprintf("item%02d", i) {
			t.Fatalf("item %d is %s: not in name order", i, name)
		}
	}
	expect(t, p, "bob", "", fmt.Sprintf("!inv list %d", pages+1), fmt.Sprintf("There are only %d pages.", pages))

	// Search by label, paged too, and the filter keeps its place in the
	// next-page hint.
	first := p.SayText("bob", "", "!inv search EVEN")
	if !strings.HasPrefix(first, `Items matching "EVEN": item00-`) || !strings.Contains(first, "next: !inv search EVEN 2)") {
		t.Fatalf("search by label: %q", first)
	}
	var evens []string
	for page := 1; page < 10; page++ {
		text := p.SayText("bob", "", fmt.Sprintf("!inv search even %d", page))
		if strings.HasPrefix(text, "There are only") {
			break
		}
		evens = append(evens, regexp.MustCompile(`item\d\d`).FindAllString(text, -1)...)
	}
	if len(evens) != n/2 {
		t.Fatalf("search by label found %d items, want %d: %v", len(evens), n/2, evens)
	}
	for _, name := range evens {
		var i int
		fmt.Sscanf(name, "item%d", &i)
		if i%2 != 0 {
			t.Fatalf("search even found %s", name)
		}
	}
	// A name match.
	expect(t, p, "bob", "", "!inv search item07", `Items matching "item07": item07-`+pad+` ×2 [odd]`)

	// Wildcards are literal: % and _ match only themselves.
	expect(t, p, "alice", "moderator", `!inv add "100%_off" 1`, "Added 100%_off ×1.")
	expect(t, p, "alice", "moderator", `!inv add 100xxoff 1`, "Added 100xxoff ×1.")
	expect(t, p, "bob", "", "!inv search %_", `Items matching "%_": 100%_off ×1`)
	expect(t, p, "bob", "", "!inv search 100_", `No item's name or label contains "100_".`)
	expect(t, p, "bob", "", `!inv search \`, `No item's name or label contains "\".`)

	// Lists of what is out, paged the same way.
	for i := range 30 {
		send(t, p, "alice", "moderator", fmt.Sprintf("!inv checkout item%02d-%s @bob", i, pad))
	}
	p.Settle()
	out := p.SayText("bob", "", "!inv list out")
	if !strings.HasPrefix(out, "Checked out: item00-"+pad+" ×2 (1 out) [even]") || !strings.Contains(out, "next: !inv list out 2)") {
		t.Fatalf("list out: %q", out)
	}
	if strings.Contains(out, "item30") {
		t.Fatalf("list out shows an item that is not out: %q", out)
	}

	// An item's holders are paged in its status.
	expect(t, p, "alice", "moderator", "!inv add reel 40 cable", "Added reel ×40 [cable].")
	for i := range 40 {
		send(t, p, "alice", "moderator", fmt.Sprintf("!inv checkout reel @holder_%02d_%s", i, strings.Repeat("h", 20)))
	}
	p.Settle()
	if n := p.Count(`SELECT count(*) FROM inventory_checkouts c JOIN inventory_items i ON i.id = c.item_id WHERE i.name = 'reel'`); n != 40 {
		t.Fatalf("%d reels out, want 40", n)
	}
	status := p.SayText("bob", "", "!inv status reel")
	if !strings.HasPrefix(status, "reel: 0 of 40 available [cable]. Recent: ") || !strings.Contains(status, "next: !inv status reel 2)") {
		t.Fatalf("status with many holders: %q", status)
	}
	if len([]rune(status)) > limit {
		t.Fatalf("status is %d characters", len([]rune(status)))
	}
	wrong := p.SayText("alice", "moderator", "!inv checkin reel @nobody")
	if !regexp.MustCompile(`^@nobody holds no reel\. It is out to @holder_\d\d_h{20}, @holder_\d\d_h{20}, @holder_\d\d_h{20}, 37 more\.$`).MatchString(wrong) {
		t.Fatalf("checkin by a non-holder: %q", wrong)
	}
	var holders []string
	for page := 1; page < 10; page++ {
		text := p.SayText("bob", "", fmt.Sprintf("!inv status reel %d", page))
		if strings.HasPrefix(text, "There are only") {
			break
		}
		// The header repeats the recent history; the holders follow "Out:".
		_, out, ok := strings.Cut(text, " Out: ")
		if !ok {
			t.Fatalf("status page %d: %q", page, text)
		}
		holders = append(holders, regexp.MustCompile(`@holder_\d\d`).FindAllString(out, -1)...)
	}
	if len(holders) != 40 {
		t.Fatalf("status pages name %d holders, want 40", len(holders))
	}
	if distinct := slices.Compact(slices.Sorted(slices.Values(holders))); len(distinct) != 40 {
		t.Fatalf("status pages name %d different holders, want 40: %v", len(distinct), holders)
	}
}

// TestRedelivery: a redelivered add or checkout changes nothing and gets the
// same reply, even after later commands changed the item.
func TestRedelivery(t *testing.T) {
	t.Parallel()
	p := start(t)
	expect(t, p, "alice", "moderator", "!inv add mic 2 audio", "Added mic ×2 [audio].")
	add := lastInvocation(t, p, "add mic 2 audio")
	expect(t, p, "alice", "moderator", "!inv checkout mic @bob", "Checked out 1 mic to @bob; 1 of 2 left.")
	checkout := lastInvocation(t, p, "checkout mic @bob")
	expect(t, p, "alice", "moderator", "!inv add mic 1", "mic was already there: added 1, now mic ×3 (1 out) [audio].")

	for _, inv := range []schemas.Invocation{add, checkout} {
		before := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
		if len(before) != 1 {
			t.Fatalf("%d replies to %s before the redelivery", len(before), inv.ArgText)
		}
		actionstest.PublishAs(t, p.Client.JS, &inv, inv.ID+"-again")
		p.Settle()
		after := actionstest.RepliesTo(t, p.Client.JS, inv.ID)
		if len(after) != 1 || after[0].ID != before[0].ID || after[0].Text != before[0].Text {
			t.Fatalf("replies to %s after the redelivery: %+v, want %+v", inv.ArgText, after, before)
		}
	}
	if n := p.Count(`SELECT quantity FROM inventory_items WHERE name = 'mic'`); n != 3 {
		t.Errorf("mic ×%d after redeliveries, want 3", n)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_checkouts`); n != 1 {
		t.Errorf("%d checkouts after redeliveries, want 1", n)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_history`); n != 3 {
		t.Errorf("%d history lines after redeliveries, want 3", n)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_labels`); n != 1 {
		t.Errorf("%d labels after redeliveries, want 1", n)
	}
	if n := p.Count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1`, add.ID); n != 1 {
		t.Errorf("the add was committed %d times", n)
	}
}

// TestLastUnitOnce: many checkouts of the last unit at once, across two
// worker replicas: exactly one wins, the others are told none is left.
func TestLastUnitOnce(t *testing.T) {
	t.Parallel()
	p := start(t)
	p.StartWorker("inventory")
	for round := range 3 {
		name := fmt.Sprintf("lamp%d", round)
		expect(t, p, "alice", "moderator", "!inv add "+name, "Added "+name+" ×1.")
		var events []*schemas.Event
		for i := range 8 {
			events = append(events, send(t, p, fmt.Sprintf("mod%d", i), "moderator", fmt.Sprintf("!inv checkout %s @user%d", name, i)))
		}
		p.Settle()
		won := 0
		for _, ev := range events {
			got := repliesTo(t, p, ev.ID)
			switch {
			case len(got) != 1:
				t.Fatalf("round %d: replies %q", round, got)
			case strings.HasPrefix(got[0], "Checked out 1 "+name+" to @user"):
				won++
			case got[0] != "No "+name+" is available: all 1 is checked out (!inv status "+name+" shows who has them).":
				t.Fatalf("round %d: reply %q", round, got[0])
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d checkouts won", round, won)
		}
		if n := p.Count(`SELECT count(*) FROM inventory_checkouts c JOIN inventory_items i ON i.id = c.item_id WHERE i.name = $1`, name); n != 1 {
			t.Fatalf("round %d: %d units out of 1", round, n)
		}
		if n := p.Count(`SELECT count(*) FROM inventory_history WHERE item_name = $1 AND action = 'checkout'`, name); n != 1 {
			t.Fatalf("round %d: %d checkouts recorded", round, n)
		}
	}
}

// TestNamesRoundTrip: whatever chat can name an item is stored and shown
// back byte for byte, or refused with a reason.
func TestNamesRoundTrip(t *testing.T) {
	t.Parallel()
	p := start(t)
	mod := "moderator"
	names := []string{
		`'; drop table inventory_items; --`,
		`{{ .Name }}`,
		"\u202Eevil\u202C",
		"🎤 mic 🎧",
		`a "quoted" \ name`,
		`Robert'); DELETE FROM inventory_history;--`,
		strings.Repeat("é", 63) + "🎤", // 64 characters, more bytes
	}
	for _, name := range names {
		arg := quoteForChat(name)
		expect(t, p, "alice", mod, "!inv add "+arg+" 2 odd", "Added "+name+" ×2 [odd].")
		expect(t, p, "alice", mod, "!inv checkout "+arg+" @bob", "Checked out 1 "+name+" to @bob; 1 of 2 left.")
		status := p.SayText("bob", "", "!inv status "+arg)
		if !strings.HasPrefix(status, name+": 1 of 2 available [odd]. Recent: ") {
			t.Errorf("status of %q: %q", name, status)
		}
		var stored string
		p.Must(p.Store.Pool().QueryRow(ctx(t), `SELECT name FROM inventory_items WHERE lower(name) = lower($1)`, name).Scan(&stored))
		if stored != name {
			t.Errorf("stored %q, want %q", stored, name)
		}
	}
	list := p.SayText("bob", "", "!inv list")
	for _, name := range names {
		if !strings.Contains(list, name+" ×2 (1 out) [odd]") {
			t.Errorf("list lacks %q: %q", name, list)
		}
	}
	expect(t, p, "bob", "", "!inv search drop table", `Items matching "drop table": '; drop table inventory_items; -- ×2 (1 out) [odd]`)
	expect(t, p, "bob", "", "!inv search {{", `Items matching "{{": {{ .Name }} ×2 (1 out) [odd]`)
	if n := p.Count(`SELECT count(*) FROM inventory_items`); n != len(names) {
		t.Errorf("%d items, want %d", n, len(names))
	}

	for _, c := range []struct{ text, want string }{
		{"!inv add \"a\x00b\"", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv add \"line\nbreak\"", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv add \"tab\tbed\"", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv add \"esc\x1b[31m\"", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv add " + strings.Repeat("x", 65), "That item name is 65 characters; at most 64."},
		{"!inv add " + strings.Repeat("🎤", 65), "That item name is 65 characters; at most 64."},
		{"!inv add \"" + strings.Repeat("y", 10*1024) + "\"", "That item name is 10240 characters; at most 64."},
		{"!inv add \"   \"", "Item names are 1 to 64 characters."},
		{"!inv checkout \"a\x00b\" @bob", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv status \"" + strings.Repeat("z", 100) + "\"", "That item name is 100 characters; at most 64."},
		{"!inv remove \"a\x07\"", "Item names can't contain control characters (new lines, tabs and the like)."},
		{"!inv search \"a\x00\"", "Search terms can't contain control characters."},
		{"!inv search " + strings.Repeat("s", 65), "Search terms are at most 64 characters."},
		{"!inv checkout mic \"@b\x00b\"", "That is not a user: name one as @login."},
		{"!inv checkout big mic @" + strings.Repeat("u", 10*1024), "That is not a user: name one as @login."},
		{"!inv add mic 1 \"l\x00\"", "Labels are 1 to 32 characters of a-z, 0-9, _ and -."},
	} {
		expect(t, p, "alice", mod, c.text, c.want)
	}
	if n := p.Count(`SELECT count(*) FROM inventory_items`); n != len(names) {
		t.Errorf("%d items after refusals, want %d", n, len(names))
	}
}

// quoteForChat writes a name as one argument, the way a user would.
func quoteForChat(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
