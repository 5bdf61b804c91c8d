package alerts

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestManifestIsValid(t *testing.T) {
	m := Manifest()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(m.Settings, &schema); err != nil {
		t.Fatalf("settings schema is not JSON: %v\n%s", err, m.Settings)
	}
}

func TestRender(t *testing.T) {
	d := AlertData{User: "Ada", Tier: "2", Count: 5, Viewers: 42, Bits: 100}
	cases := []struct{ template, want string }{
		{"{user} just followed!", "Ada just followed!"},
		{"{user} tier {tier}", "Ada tier 2"},
		{"{count} gifts from {user}", "5 gifts from Ada"},
		{"raid of {viewers}", "raid of 42"},
		{"{bits} bits", "100 bits"},
		{"{unknown} stays", "{unknown} stays"},
		{"{user}{user}", "AdaAda"},
	}
	for _, c := range cases {
		if got := Render(c.template, d); got != c.want {
			t.Errorf("Render(%q) = %q, want %q", c.template, got, c.want)
		}
	}
	// A placeholder in a user's name is not expanded again.
	if got := Render("{user}!", AlertData{User: "{bits}"}); got != "{bits}!" {
		t.Errorf("a name of {bits} became %q", got)
	}
}

func TestReadSettings(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		kind schemas.Kind
		want kindSettings
	}{
		{"none", ``, schemas.KindFollow, kindSettings{true, "{user} just followed!", 5000}},
		{"not JSON", `{`, schemas.KindRaid, kindSettings{true, Defaults[schemas.KindRaid].Template, 8000}},
		{"off", `{"follow": {"enabled": false}}`, schemas.KindFollow, kindSettings{false, "{user} just followed!", 5000}},
		{"other kind untouched", `{"follow": {"enabled": false}}`, schemas.KindCheer, kindSettings{true, Defaults[schemas.KindCheer].Template, 6000}},
		{"template and duration", `{"cheer": {"template": "{bits}!", "duration_seconds": 2.5}}`, schemas.KindCheer, kindSettings{true, "{bits}!", 2500}},
		{"blank template and bad duration take defaults", `{"gift": {"template": "  ", "duration_seconds": 600}}`, schemas.KindGift, kindSettings{true, Defaults[schemas.KindGift].Template, 7000}},
		{"wrong types", `{"subscription": {"enabled": "yes"}}`, schemas.KindSubscription, kindSettings{true, Defaults[schemas.KindSubscription].Template, 7000}},
		{"template too long", `{"follow": {"template": "` + strings.Repeat("x", MaxTemplate+1) + `"}}`, schemas.KindFollow, kindSettings{true, "{user} just followed!", 5000}},
	}
	for _, c := range cases {
		if got := readSettings(json.RawMessage(c.raw), c.kind); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func invocation(route, command, arg string, ev schemas.Event, settings string) *schemas.Invocation {
	inv := &schemas.Invocation{Version: schemas.Version, ID: uuid.NewString(), Event: ev, Module: Name, Route: route,
		Command: command, ArgText: arg, Community: schemas.Community{ID: uuid.NewString(), Prefix: "!"}}
	if settings != "" {
		inv.Settings = json.RawMessage(settings)
	}
	return inv
}

func TestHandleEvents(t *testing.T) {
	user := schemas.User{ID: "1", Login: "ada", DisplayName: "Ada"}
	cases := []struct {
		kind     schemas.Kind
		data     *schemas.EventData
		user     schemas.User
		settings string
		want     string // "" for no alert
		duration int
	}{
		{schemas.KindFollow, nil, user, "", "Ada just followed!", 5000},
		{schemas.KindFollow, nil, schemas.User{Login: "lowercase"}, "", "lowercase just followed!", 5000},
		{schemas.KindFollow, nil, schemas.User{}, "", "Someone just followed!", 5000},
		{schemas.KindSubscription, &schemas.EventData{Tier: "3000"}, user, "", "Ada just subscribed at tier 3!", 7000},
		{schemas.KindSubscription, &schemas.EventData{Tier: "prime"}, user, "", "Ada just subscribed at tier Prime!", 7000},
		{schemas.KindGift, &schemas.EventData{Count: 10}, user, "", "Ada gifted 10 subs!", 7000},
		{schemas.KindRaid, &schemas.EventData{Viewers: 77}, user, "", "Ada is raiding with 77 viewers!", 8000},
		{schemas.KindCheer, &schemas.EventData{Bits: 500}, user, `{"cheer": {"duration_seconds": 3}}`, "Ada cheered 500 bits!", 3000},
		{schemas.KindCheer, &schemas.EventData{Bits: 500}, user, `{"cheer": {"enabled": false}}`, "", 0},
		{schemas.KindFollow, nil, schemas.User{DisplayName: `<img src=x onerror=alert(1)>`}, "", `<img src=x onerror=alert(1)> just followed!`, 5000},
	}
	for _, c := range cases {
		ev := schemas.Event{Kind: c.kind, User: c.user, Data: c.data}
		res, err := handle(context.Background(), invocation(schemas.RouteTrigger+string(c.kind), "", "", ev, c.settings), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.kind, err)
		}
		if err := res.Validate(); err != nil {
			t.Fatalf("%s: invalid result: %v", c.kind, err)
		}
		if c.want == "" {
			if len(res.Overlays) != 0 || len(res.Replies) != 0 {
				t.Errorf("%s turned off: %+v", c.kind, res)
			}
			continue
		}
		if len(res.Overlays) != 1 || len(res.Replies) != 0 {
			t.Fatalf("%s: %+v, want one overlay and no reply", c.kind, res)
		}
		o := res.Overlays[0]
		var d AlertData
		if err := json.Unmarshal(o.Data, &d); err != nil || d.Kind != c.kind {
			t.Errorf("%s: data %s (%v)", c.kind, o.Data, err)
		}
		if o.Source != schemas.OverlayAlert || o.Text != c.want || o.DurationMS != c.duration {
			t.Errorf("%s: %+v, want %q for %d ms", c.kind, o, c.want, c.duration)
		}
	}
}

func TestHandleTicker(t *testing.T) {
	cases := []struct {
		arg, reply, text string
		clear, overlay   bool
	}{
		{"", "Usage: !ticker <text> sets the ticker; !ticker clear clears it.", "", false, false},
		{"Raffle at 9!", "Ticker set.", "Raffle at 9!", false, true},
		{"  <script>x</script>  ", "Ticker set.", "<script>x</script>", false, true},
		{"CLEAR", "Ticker cleared.", "", true, true},
		{strings.Repeat("é", MaxTickerText+1), "The ticker holds at most 500 characters; that was 501.", "", false, false},
	}
	for _, c := range cases {
		res, err := handle(context.Background(), invocation(schemas.RouteCommand+Command, Command, c.arg, schemas.Event{Kind: schemas.KindChat}, ""), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Replies) != 1 || res.Replies[0].Text != c.reply {
			t.Errorf("%q: replies %+v, want %q", c.arg, res.Replies, c.reply)
		}
		if !c.overlay {
			if len(res.Overlays) != 0 {
				t.Errorf("%q: overlay %+v", c.arg, res.Overlays)
			}
			continue
		}
		if len(res.Overlays) != 1 || res.Overlays[0].Source != schemas.OverlayTicker || res.Overlays[0].Text != c.text ||
			(c.clear != strings.Contains(string(res.Overlays[0].Data), `"clear":true`)) {
			t.Errorf("%q: overlays %+v", c.arg, res.Overlays)
		}
	}
	if _, err := handle(context.Background(), invocation(schemas.RouteCommand+"nope", "nope", "", schemas.Event{}, ""), nil); err == nil {
		t.Error("an unknown command was handled")
	}
}

func FuzzSettingsAndRender(f *testing.F) {
	f.Add(`{"follow": {"template": "{user} {bits}", "duration_seconds": 3}}`, "Ada")
	f.Add(`{"raid": null}`, "<b>")
	f.Add(`[]`, "")
	f.Fuzz(func(t *testing.T, raw, name string) {
		for _, k := range kinds {
			s := readSettings(json.RawMessage(raw), k)
			if s.DurationMS < 1000 || s.DurationMS > 60000 || s.Template == "" {
				t.Fatalf("%s settings out of range from %q: %+v", k, raw, s)
			}
			_ = Render(s.Template, AlertData{User: name})
		}
	})
}
