package portal_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/alias"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/portal"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// widgets is a test module with every kind of setting the form renders.
func widgets() schemas.Manifest {
	return schemas.Manifest{Name: "widgets", Version: "1.2.3", Description: "Test widgets", DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{Name: "widget", Usage: "widget [n]", Permission: schemas.PermissionEveryone,
			GlobalCooldownMS: 5000, UserCooldownMS: 1500}},
		Triggers: []schemas.TriggerSpec{{Kind: schemas.Kind("follow")}},
		Settings: json.RawMessage(`{"type":"object","properties":{
			"greeting":{"type":"string","maxLength":10,"description":"Said first"},
			"count":{"type":"integer","minimum":1,"maximum":5,"default":2},
			"loud":{"type":"boolean"},
			"mode":{"enum":["a","b"]},
			"extra":{"type":"array","items":{"type":"string"}}},
			"required":["greeting"],"additionalProperties":false}`)}
}

// pond is a community with an owner and a moderator, and a catalogue.
type pond struct {
	e          *env
	id, base   string
	owner, mod *browser
	ot, mt     string // their CSRF tokens
	conn       *natsx.Conn
}

func newPond(t *testing.T) *pond {
	t.Helper()
	var conn *natsx.Conn
	e := newEnv(t, func(c *portal.Config) { conn = c.Conn })
	for _, m := range []schemas.Manifest{widgets(), alias.Manifest()} {
		if _, err := e.st.UpsertManifest(ctx, m, true); err != nil {
			t.Fatal(err)
		}
	}
	p := &pond{e: e, conn: conn}
	p.owner = e.signInTwitch("1", "own")
	_, page := p.owner.get(e.url + "/portal/communities/new")
	p.ot = csrfOf(t, page)
	p.owner.post(e.url+"/portal/communities", url.Values{"csrf": {p.ot}, "name": {"Pond"}, "prefix": {"!"}, "time_zone": {"UTC"}})
	list, _ := e.st.CommunitiesOf(ctx, nobody, true)
	p.id = list[0].Community.ID
	p.base = e.url + "/portal/c/" + p.id
	if status, _ := p.owner.post(p.base+"/members", url.Values{"csrf": {p.ot}, "platform": {"twitch"}, "platform_user_id": {"2"}, "role": {"moderator"}}); status != http.StatusOK {
		t.Fatalf("add moderator: %d", status)
	}
	p.mod = e.signInTwitch("2", "modo")
	_, page = p.mod.get(p.base)
	p.mt = csrfOf(t, page)
	return p
}

// waitNotices waits for at least n control notices of the community.
func (p *pond) waitNotices(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.e.noticeCount(p.id) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.e.noticeCount(p.id); got < n {
		t.Fatalf("%d control notices, want %d", got, n)
	}
}

func (p *pond) lastAudit(t *testing.T) store.AuditEntry {
	t.Helper()
	log, err := p.e.st.AuditLog(ctx, p.id, 1)
	if err != nil || len(log) == 0 {
		t.Fatalf("audit log: %v %v", log, err)
	}
	return log[0]
}

func TestModulesPageLivenessAndPermissions(t *testing.T) {
	p := newPond(t)
	kv, err := p.conn.JS.KeyValue(ctx, streams.BucketHeartbeats)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "widgets.one", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	status, page := p.mod.get(p.base + "/modules")
	if status != http.StatusOK || !strings.Contains(page, "widgets") || !strings.Contains(page, "alive (1 replica)") ||
		!strings.Contains(page, "not running") {
		t.Fatalf("modules page for a moderator: %d\n%s", status, page)
	}
	if strings.Contains(page, "/enabled") {
		t.Fatal("a moderator is offered the enable/disable forms")
	}
	_, page = p.mod.get(p.base + "/modules/widgets")
	if !strings.Contains(page, "widget [n]") || !strings.Contains(page, "follow") || strings.Contains(page, "Save settings") {
		t.Fatalf("module page for a moderator:\n%s", page)
	}
	if status, _ := p.mod.post(p.base+"/modules/widgets/enabled", url.Values{"csrf": {p.mt}, "enabled": {"false"}}); status != http.StatusForbidden {
		t.Fatalf("moderator disables a module: %d", status)
	}
	if status, _ := p.mod.post(p.base+"/modules/widgets/settings", url.Values{"csrf": {p.mt}, "s.greeting": {"hi"}}); status != http.StatusForbidden {
		t.Fatalf("moderator saves settings: %d", status)
	}
	// Without the CSRF token nothing changes, even for the owner.
	if status, _ := p.owner.post(p.base+"/modules/widgets/enabled", url.Values{"enabled": {"false"}}); status != http.StatusForbidden {
		t.Fatalf("no token: %d", status)
	}
	if ch, _ := p.e.st.CommunityModules(ctx, p.id); len(ch) != 0 {
		t.Fatalf("a refused request changed modules: %v", ch)
	}

	before := p.e.noticeCount(p.id)
	if status, page := p.owner.post(p.base+"/modules/widgets/enabled", url.Values{"csrf": {p.ot}, "enabled": {"false"}}); status != http.StatusOK || !strings.Contains(page, "off") {
		t.Fatalf("owner disables: %d\n%s", status, page)
	}
	ch, _ := p.e.st.CommunityModules(ctx, p.id)
	if c, ok := ch["widgets"]; !ok || c.Enabled {
		t.Fatalf("after disable %v", ch)
	}
	a := p.lastAudit(t)
	if a.Action != "module.set" || a.Target != "widgets" || a.Details["before"] != nil ||
		a.Details["after"].(map[string]any)["enabled"] != false || a.Details["ip"] != "127.0.0.1" {
		t.Fatalf("audit %+v", a)
	}
	p.waitNotices(t, before+1)
	if status, _ := p.owner.get(p.base + "/modules/nosuch"); status != http.StatusNotFound {
		t.Fatalf("unknown module: %d", status)
	}
	if got := p.e.auditActions(p.id); !contains(got, "permission.denied") {
		t.Fatalf("refusals not audited: %v", got)
	}
}

func TestModuleSettingsValidatedAgainstSchema(t *testing.T) {
	p := newPond(t)
	status, page := p.owner.get(p.base + "/modules/widgets")
	if status != http.StatusOK || !strings.Contains(page, "Save settings") || !strings.Contains(page, `name="s.count" value="2"`) ||
		!strings.Contains(page, `<textarea id="s-extra"`) || !strings.Contains(page, `<select id="s-mode"`) {
		t.Fatalf("settings form:\n%s", page)
	}
	save := func(v url.Values) (int, string) {
		v.Set("csrf", p.ot)
		return p.owner.post(p.base+"/modules/widgets/settings", v)
	}
	for _, c := range []struct {
		name string
		form url.Values
		want string
	}{
		{"too big", url.Values{"s.greeting": {"hi"}, "s.count": {"9"}}, "maximum"},
		{"not a whole number", url.Values{"s.greeting": {"hi"}, "s.count": {"2.5"}}, "Give a whole number."},
		{"required missing", url.Values{"s.count": {"3"}}, "This setting is required."},
		{"too long", url.Values{"s.greeting": {"hello there friend"}}, "maxLength"},
		{"bad JSON", url.Values{"s.greeting": {"hi"}, "s.extra": {"[1,"}}, "not valid JSON"},
		{"wrong item type", url.Values{"s.greeting": {"hi"}, "s.extra": {"[1]"}}, "at /0"},
		{"not an option", url.Values{"s.greeting": {"hi"}, "s.mode": {`"c"`}}, "value must be one of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, page := save(c.form)
			if status != http.StatusBadRequest || !strings.Contains(page, c.want) || !strings.Contains(page, `aria-invalid="true"`) {
				t.Fatalf("%d, want 400 with %q:\n%s", status, c.want, page)
			}
		})
	}
	if ch, _ := p.e.st.CommunityModules(ctx, p.id); len(ch) != 0 {
		t.Fatalf("refused settings were saved: %v", ch)
	}

	before := p.e.noticeCount(p.id)
	status, page = save(url.Values{"s.greeting": {"hi"}, "s.count": {"4"}, "s.loud": {"true"}, "s.mode": {`"b"`}, "s.extra": {`["x"]`}})
	if status != http.StatusOK || !strings.Contains(page, "Settings saved.") {
		t.Fatalf("valid save: %d\n%s", status, page)
	}
	ch, _ := p.e.st.CommunityModules(ctx, p.id)
	var got map[string]any
	_ = json.Unmarshal(ch["widgets"].Settings, &got)
	if !ch["widgets"].Enabled || got["greeting"] != "hi" || got["count"] != 4.0 || got["loud"] != true || got["mode"] != "b" {
		t.Fatalf("saved %+v %v", ch["widgets"], got)
	}
	a := p.lastAudit(t)
	after := a.Details["after"].(map[string]any)
	if a.Action != "module.set" || after["settings"].(map[string]any)["greeting"] != "hi" {
		t.Fatalf("audit %+v", a)
	}
	p.waitNotices(t, before+1)
	// The form shows what is saved.
	_, page = p.owner.get(p.base + "/modules/widgets")
	if !strings.Contains(page, `name="s.count" value="4"`) || !strings.Contains(page, `value="true" checked`) {
		t.Fatalf("form after save:\n%s", page)
	}
}

func TestCommandOverridesSetAndReset(t *testing.T) {
	p := newPond(t)
	if status, _ := p.mod.get(p.base + "/commands"); status != http.StatusForbidden {
		t.Fatalf("moderator sees commands: %d", status)
	}
	status, page := p.owner.get(p.base + "/commands")
	if status != http.StatusOK || !strings.Contains(page, `id="cmd-widget"`) || !strings.Contains(page, "cooldown 5 s, per user 1.5 s") {
		t.Fatalf("commands page: %d\n%s", status, page)
	}
	set := func(v url.Values) (int, string) {
		v.Set("csrf", p.ot)
		return p.owner.post(p.base+"/commands/widget", v)
	}
	if status, page := set(url.Values{"enabled": {"true"}, "permission": {"moderator"}, "global_cooldown": {"-1"}, "user_cooldown": {"1.5"}}); status != http.StatusBadRequest || !strings.Contains(page, "0 or more") {
		t.Fatalf("negative cooldown: %d\n%s", status, page)
	}
	if status, _ := set(url.Values{"enabled": {"true"}, "permission": {"owner"}}); status != http.StatusBadRequest {
		t.Fatalf("unknown permission: %d", status)
	}
	before := p.e.noticeCount(p.id)
	if status, _ := set(url.Values{"permission": {"moderator"}, "global_cooldown": {"10"}, "user_cooldown": {"1.5"}}); status != http.StatusOK {
		t.Fatalf("set: %d", status)
	}
	os, _ := p.e.st.CommandOverrides(ctx, p.id)
	o := os["widget"]
	if o.Enabled == nil || *o.Enabled || o.Permission == nil || *o.Permission != "moderator" || o.GlobalCooldownMS == nil ||
		*o.GlobalCooldownMS != 10000 || o.UserCooldownMS != nil {
		t.Fatalf("override %+v", o)
	}
	if a := p.lastAudit(t); a.Action != "command.override" || a.Details["before"] != nil ||
		a.Details["after"].(map[string]any)["permission"] != "moderator" {
		t.Fatalf("audit %+v", a)
	}
	p.waitNotices(t, before+1)
	_, page = p.owner.get(p.base + "/commands")
	if !strings.Contains(page, "Reset to the module") {
		t.Fatalf("no reset offered:\n%s", page)
	}
	if status, _ := p.owner.post(p.base+"/commands/widget/reset", url.Values{"csrf": {p.ot}}); status != http.StatusOK {
		t.Fatalf("reset: %d", status)
	}
	if os, _ := p.e.st.CommandOverrides(ctx, p.id); len(os) != 0 {
		t.Fatalf("after reset %v", os)
	}
	if a := p.lastAudit(t); a.Action != "command.reset" || a.Details["after"] != nil ||
		a.Details["before"].(map[string]any)["global_cooldown_ms"] != 10000.0 {
		t.Fatalf("audit %+v", a)
	}
	p.waitNotices(t, before+2)
	if status, _ := p.owner.post(p.base+"/commands/nosuch/reset", url.Values{"csrf": {p.ot}}); status != http.StatusNotFound {
		t.Fatalf("unknown command: %d", status)
	}
}

func TestAliasesValidatedAsTheModuleDoes(t *testing.T) {
	p := newPond(t)
	add := func(name, command string) (int, string) {
		return p.mod.post(p.base+"/aliases", url.Values{"csrf": {p.mt}, "name": {name}, "command": {command}})
	}
	for _, c := range []struct{ name, command, want string }{
		{"widget", "!widget", "!widget is already a command (module widgets): pick another name."},
		{"w", "!nope", "There is no command or alias !nope."},
		{"W", "!widget", "Alias names are lower case: w, not W."},
		{"x", "!alias list", "An alias cannot run !alias."},
		{"", "!widget", "Usage: !alias add"},
	} {
		status, page := add(c.name, c.command)
		if status != http.StatusBadRequest || !strings.Contains(page, c.want) {
			t.Fatalf("add %q %q: %d, want %q\n%s", c.name, c.command, status, c.want, page)
		}
	}
	before := p.e.noticeCount(p.id)
	if status, page := add("w", "!widget {1|3}"); status != http.StatusOK || !strings.Contains(page, "Alias !w added.") || !strings.Contains(page, "!widget {1|3}") {
		t.Fatalf("add: %d\n%s", status, page)
	}
	if status, page := add("w", "!widget"); status != http.StatusBadRequest || !strings.Contains(page, "exists already") {
		t.Fatalf("add twice: %d\n%s", status, page)
	}
	as, _ := p.e.st.Aliases(ctx, p.id)
	if as["w"].Target != "widget {1|3}" || as["w"].CreatedBy != "MODO" {
		t.Fatalf("aliases %+v", as)
	}
	p.waitNotices(t, before+1)
	if status, _ := p.mod.post(p.base+"/aliases/w/remove", url.Values{"csrf": {p.mt}}); status != http.StatusOK {
		t.Fatalf("remove: %d", status)
	}
	if status, page := p.mod.post(p.base+"/aliases/w/remove", url.Values{"csrf": {p.mt}}); status != http.StatusNotFound || !strings.Contains(page, "There is no alias !w.") {
		t.Fatalf("remove twice: %d\n%s", status, page)
	}
	if a := p.lastAudit(t); a.Action != "alias.remove" || a.Details["before"].(map[string]any)["target"] != "widget {1|3}" {
		t.Fatalf("audit %+v", a)
	}
	if got := p.e.auditActions(p.id); !contains(got, "alias.add") {
		t.Fatalf("audit %v", got)
	}
	p.waitNotices(t, before+2)
	stranger := p.e.signInTwitch("3", "nobody")
	if status, _ := stranger.get(p.base + "/aliases"); status != http.StatusForbidden {
		t.Fatalf("stranger sees aliases: %d", status)
	}
}

func TestQuotesPagedAddedAndDeleted(t *testing.T) {
	p := newPond(t)
	addQ := func(text, author string) (int, string) {
		return p.mod.post(p.base+"/quotes", url.Values{"csrf": {p.mt}, "text": {text}, "author": {author}})
	}
	if status, page := addQ(strings.Repeat("x", 401), ""); status != http.StatusBadRequest || !strings.Contains(page, "the most is 400") {
		t.Fatalf("long quote: %d\n%s", status, page)
	}
	if status, page := addQ("a\u2028b", ""); status != http.StatusBadRequest || !strings.Contains(page, "line break") {
		t.Fatalf("line break: %d\n%s", status, page)
	}
	for i := 1; i <= 27; i++ {
		if status, _ := addQ("quote "+strings.Repeat("!", i), "Bob"); status != http.StatusOK {
			t.Fatalf("add %d: %d", i, status)
		}
	}
	_, page := p.mod.get(p.base + "/quotes")
	if !strings.Contains(page, "Quotes (27), page 1 of 2") || !strings.Contains(page, "quotes?page=2") || strings.Contains(page, "<td>2</td>") {
		t.Fatalf("page 1:\n%s", page)
	}
	_, page = p.mod.get(p.base + "/quotes?page=2")
	if !strings.Contains(page, "<td>2</td>") || !strings.Contains(page, "quotes?page=1") {
		t.Fatalf("page 2:\n%s", page)
	}
	if status, page := p.mod.post(p.base+"/quotes/2/delete", url.Values{"csrf": {p.mt}}); status != http.StatusOK || !strings.Contains(page, "Quote #2 deleted.") {
		t.Fatalf("delete: %d\n%s", status, page)
	}
	if status, _ := p.mod.post(p.base+"/quotes/2/delete", url.Values{"csrf": {p.mt}}); status != http.StatusNotFound {
		t.Fatalf("delete twice: %d", status)
	}
	if a := p.lastAudit(t); a.Action != "quote.delete" || a.Target != "2" || a.Details["before"].(map[string]any)["author"] != "Bob" {
		t.Fatalf("audit %+v", a)
	}
	// Numbers are never reused, as in chat.
	addQ("again", "")
	var n int
	_ = p.e.st.Pool().QueryRow(ctx, `SELECT max(number) FROM memories_quotes WHERE community_id = $1`, p.id).Scan(&n)
	if n != 28 {
		t.Fatalf("next number %d", n)
	}
}

func TestReputationLeaderboard(t *testing.T) {
	p := newPond(t)
	for _, r := range []struct {
		subject, name  string
		total, pending int64
	}{
		{"twitch:1", "Top", 25000, 9000}, // clamped at 850
		{"twitch:2", "Low", -30000, -100},
		{"twitch:3", "Mid", 1000, 50},
		{"twitch:4", "", 0, 0},
	} {
		if _, err := p.e.st.Pool().Exec(ctx, `INSERT INTO reputation_scores (community_id, subject, display_name, total, pending) VALUES ($1, $2, $3, $4, $5)`,
			p.id, r.subject, r.name, r.total, r.pending); err != nil {
			t.Fatal(err)
		}
	}
	status, page := p.mod.get(p.base + "/reputation")
	want := []string{"<td>1</td><td>Top</td><td>850</td><td>exceptional</td>", "<td>2</td><td>Mid</td><td>610</td><td>fair</td>",
		"<td>3</td><td>twitch:4</td><td>600</td><td>fair</td>", "<td>4</td><td>Low</td><td>300</td><td>poor</td>"}
	last := -1
	for _, w := range want {
		i := strings.Index(page, w)
		if status != http.StatusOK || i < last {
			t.Fatalf("want %q after the previous row:\n%s", w, page)
		}
		last = i
	}
	stranger := p.e.signInTwitch("3", "nobody")
	if status, _ := stranger.get(p.base + "/reputation"); status != http.StatusForbidden {
		t.Fatalf("stranger: %d", status)
	}
}
