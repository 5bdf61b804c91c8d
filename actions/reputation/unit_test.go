package reputation

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestParseWeights(t *testing.T) {
	def := DefaultWeights()
	for _, c := range []struct {
		name     string
		settings string
		want     func(w *Weights)
	}{
		{"none", ``, func(*Weights) {}},
		{"not JSON", `{`, func(*Weights) {}},
		{"not an object", `[1]`, func(*Weights) {}},
		{"overrides", `{"follow": 7, "ban": -300, "chat": 0.5}`, func(w *Weights) { w.Follow, w.Ban, w.Chat = 7, -300, 0.5 }},
		{"out of range kept default", `{"follow": 9000, "raid": 4}`, func(w *Weights) { w.Raid = 4 }},
		{"wrong type kept default", `{"follow": "lots", "cheer_per_100_bits": 2}`, func(w *Weights) { w.CheerPer100Bits = 2 }},
		{"unknown ignored", `{"boost": 5}`, func(*Weights) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := def
			c.want(&want)
			if got := parseWeights(json.RawMessage(c.settings)); got != want {
				t.Errorf("parseWeights(%s) = %+v, want %+v", c.settings, got, want)
			}
		})
	}
}

func TestSettingsSchemaIsJSON(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(settingsSchema, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc["properties"].(map[string]any)
	if len(props) != 11 {
		t.Errorf("schema has %d weights, want 11", len(props))
	}
}

func TestRequested(t *testing.T) {
	w := DefaultWeights()
	ev := func(k schemas.Kind, d *schemas.EventData) *schemas.Event { return &schemas.Event{Kind: k, Data: d} }
	for _, c := range []struct {
		name  string
		ev    *schemas.Event
		want  int64
		moves bool
	}{
		{"chat", ev(schemas.KindChat, nil), 1, true},
		{"follow", ev(schemas.KindFollow, nil), 100, true},
		{"tier 1", ev(schemas.KindSubscription, &schemas.EventData{Tier: "1000"}), 500, true},
		{"tier 2", ev(schemas.KindSubscription, &schemas.EventData{Tier: "2000"}), 1000, true},
		{"tier 3", ev(schemas.KindSubscription, &schemas.EventData{Tier: "3000"}), 2000, true},
		{"prime", ev(schemas.KindSubscription, &schemas.EventData{Tier: "prime"}), 500, true},
		{"no tier", ev(schemas.KindSubscription, nil), 500, true},
		{"gifted to them", ev(schemas.KindSubscription, &schemas.EventData{Tier: "1000", Gifted: true}), 0, false},
		{"gift of 5", ev(schemas.KindGift, &schemas.EventData{Count: 5}), 1500, true},
		{"gift without count", ev(schemas.KindGift, nil), 300, true},
		{"cheer 100", ev(schemas.KindCheer, &schemas.EventData{Bits: 100}), 100, true},
		{"cheer 150", ev(schemas.KindCheer, &schemas.EventData{Bits: 150}), 150, true},
		{"cheer 0", ev(schemas.KindCheer, &schemas.EventData{}), 0, false},
		{"raid", ev(schemas.KindRaid, &schemas.EventData{Viewers: 40}), 200, true},
		{"timeout", ev(schemas.KindTimeout, nil), -5000, true},
		{"ban", ev(schemas.KindBan, nil), -20000, true},
		{"join", ev(schemas.KindJoin, nil), 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, moves := w.requested(c.ev)
			if got != c.want || moves != c.moves {
				t.Errorf("requested = %d, %v; want %d, %v", got, moves, c.want, c.moves)
			}
		})
	}
}

func TestSubjectOf(t *testing.T) {
	mod := schemas.User{ID: "m1", Login: "mod"}
	bob := schemas.User{ID: "b1", Login: "bob", DisplayName: "Bob"}
	inv := func(k schemas.Kind, u schemas.User, person string, d *schemas.EventData) *schemas.Invocation {
		return &schemas.Invocation{PersonID: person, Event: schemas.Event{Platform: "twitch", Kind: k, User: u, Data: d}}
	}
	for _, c := range []struct {
		name string
		inv  *schemas.Invocation
		want string
		ok   bool
	}{
		{"account", inv(schemas.KindFollow, bob, "", nil), "twitch:b1", true},
		{"person takes over", inv(schemas.KindFollow, bob, "p-1", nil), "person:p-1", true},
		{"login when no id", inv(schemas.KindChat, schemas.User{Login: "carl"}, "", nil), "twitch:carl", true},
		{"anonymous", inv(schemas.KindCheer, schemas.User{}, "", nil), "", false},
		{"ban strikes the target", inv(schemas.KindBan, mod, "p-mod", &schemas.EventData{Target: &bob}), "twitch:b1", true},
		{"ban of oneself keeps the person", inv(schemas.KindBan, bob, "p-1", &schemas.EventData{Target: &bob}), "person:p-1", true},
		{"timeout without target", inv(schemas.KindTimeout, mod, "", nil), "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, ok := subjectOf(c.inv)
			if ok != c.ok || a.subject != c.want {
				t.Errorf("subjectOf = %q, %v; want %q, %v", a.subject, ok, c.want, c.ok)
			}
		})
	}
}

func TestPointsAndTier(t *testing.T) {
	for _, c := range []struct {
		total int64
		score int
		tier  string
	}{
		{0, 600, "fair"}, {1, 600, "fair"}, {-1, 599, "fair"}, {-2001, 579, "poor"}, {25000, 850, "exceptional"},
		{99999, 850, "exceptional"}, {-99999, 300, "poor"}, {7000, 670, "good"}, {14000, 740, "very good"},
	} {
		if s := Points(c.total); s != c.score || Tier(s) != c.tier {
			t.Errorf("Points(%d) = %d (%s), want %d (%s)", c.total, s, Tier(s), c.score, c.tier)
		}
	}
}

func TestParseAdjust(t *testing.T) {
	for _, c := range []struct {
		text    string
		who     string
		points  int
		reason  string
		problem string // a part of it; "" when it parses
	}{
		{"@bob +25 ran the raffle", "bob", 25, "ran the raffle", ""},
		{"Bob -10 spam", "bob", -10, "spam", ""},
		{"<@123> 5 helpful", "123", 5, "helpful", ""},
		{"<@U12AB|bob> +550 everything", "u12ab", 550, "everything", ""},
		{"@bob +25", "", 0, "", missingParts},
		{"", "", 0, "", missingParts},
		{"@bob lots of help", "", 0, "", "is not an amount"},
		{"@bob 2.5 half", "", 0, "", "is not an amount"},
		{"@bob +0 nothing", "", 0, "", "not 0"},
		{"@bob +551 too much", "", 0, "", "from -550 to +550"},
		{"@bob -99999 too much", "", 0, "", "is not an amount"},
		{"b*b +5 nope", "", 0, "", "is not a user"},
		{"@bob +5 " + strings.Repeat("x", MaxReason+1), "", 0, "", "characters long"},
		{"@bob +5 bell\x07", "", 0, "", "control character"},
	} {
		t.Run(c.text, func(t *testing.T) {
			a, problem := parseAdjust(c.text)
			if c.problem != "" {
				if !strings.Contains(problem, c.problem) {
					t.Errorf("problem = %q, want it to contain %q", problem, c.problem)
				}
				return
			}
			if problem != "" || a.who.name != c.who || a.points != c.points || a.reason != c.reason {
				t.Errorf("parseAdjust = %+v, %q", a, problem)
			}
		})
	}
}

// FuzzParseAdjust: whatever a moderator types, the parser does not panic,
// and what it accepts is in bounds and fits a reply.
func FuzzParseAdjust(f *testing.F) {
	for _, s := range []string{"@bob +25 ran the raffle", "<@123> -5 x", "bob 0 y", "@b 9999 z", "<@U1|n> +1 \x00", "   "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, problem := parseAdjust(s)
		if problem != "" {
			if !utf8.ValidString(problem) || utf8.RuneCountInString(problem) > 200 {
				t.Fatalf("problem %q too long or not UTF-8", problem)
			}
			return
		}
		switch {
		case a.points == 0 || a.points < -MaxAdjust || a.points > MaxAdjust:
			t.Fatalf("accepted %d points", a.points)
		case a.reason == "" || !utf8.ValidString(a.reason) || utf8.RuneCountInString(a.reason) > MaxReason:
			t.Fatalf("accepted reason %q", a.reason)
		case a.who.name == "" || strings.ContainsAny(a.who.name, " \t\n"):
			t.Fatalf("accepted user %q", a.who.name)
		}
	})
}
