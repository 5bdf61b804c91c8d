package reputation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/reputation"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

const twitchChannel = "tw-1"

// start runs the pipeline with the reputation module; the Twitch channel
// tw-1 belongs to the console channel's community, so events published on
// it show in !rep typed on the console.
func start(t *testing.T, foldEvery int) *pipelinetest.Pipeline {
	t.Helper()
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return reputation.New(reputation.Config{Store: st, FoldEvery: foldEvery})
		}},
		TuneRouter: func(c *router.Config) { c.UserRateLimit, c.ChannelRateLimit = 100000, 100000 },
	})
	c := p.Community(pipelinetest.DefaultChannel)
	p.Must(p.Store.ClaimChannel(context.Background(), "test", c.ID,
		store.Channel{Platform: schemas.PlatformTwitch, ChannelID: twitchChannel, Name: "streamer"}))
	return p
}

// setWeights gives the community its own weights and tells the routers.
func setWeights(t *testing.T, p *pipelinetest.Pipeline, weights string) {
	t.Helper()
	c := p.Community(pipelinetest.DefaultChannel)
	p.Must(p.Store.SetModule(context.Background(), "test", c.ID, reputation.Name, true, json.RawMessage(weights)))
	p.Must(p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))
	p.Must(p.Client.NC.Flush())
}

// twitchEvent is an event as the Twitch collector normalizes it.
func twitchEvent(kind schemas.Kind, user schemas.User, data *schemas.EventData) *schemas.Event {
	return &schemas.Event{ID: schemas.NewEventID(), Platform: schemas.PlatformTwitch, Kind: kind,
		Channel: schemas.Channel{ID: twitchChannel, Name: "streamer"}, User: user, Data: data, OccurredAt: time.Now().UTC()}
}

// publishTwice publishes ev as a collector does, then the same event again
// under another Nats-Msg-Id, as a redelivery past the duplicate window.
func publishTwice(t *testing.T, p *pipelinetest.Pipeline, ev *schemas.Event) {
	t.Helper()
	ctx := context.Background()
	p.Must(collectors.NewPublisher(p.Client.JS, nil).Publish(ctx, ev))
	body, err := json.Marshal(ev)
	p.Must(err)
	_, err = p.Client.JS.Publish(ctx, ev.Subject(), body, jetstream.WithMsgID(ev.ID+"-again"))
	p.Must(err)
	p.Settle()
}

func score(t *testing.T, p *pipelinetest.Pipeline, subject string) (total int64) {
	t.Helper()
	c := p.Community(pipelinetest.DefaultChannel)
	total = int64(p.Count(`SELECT coalesce((SELECT total FROM reputation_scores WHERE community_id = $1 AND subject = $2), 0)`, c.ID, subject))
	if sum := int64(p.Count(`SELECT coalesce(sum(delta), 0)::int FROM reputation_ledger WHERE community_id = $1 AND subject = $2`, c.ID, subject)); sum != total {
		t.Errorf("%s: the ledger sums to %d, the running total is %d", subject, sum, total)
	}
	return total
}

func expect(t *testing.T, p *pipelinetest.Pipeline, user, role, text, want string) {
	t.Helper()
	if got := p.SayText(user, role, text); got != want {
		t.Errorf("%s (%s) says %q:\n got %q\nwant %q", user, role, text, got, want)
	}
}

var (
	bob   = schemas.User{ID: "b1", Login: "bob", DisplayName: "Bob"}
	carol = schemas.User{ID: "c1", Login: "carol", DisplayName: "Carol"}
	mod   = schemas.User{ID: "m1", Login: "mod", DisplayName: "Mod"}
)

// A follow, a sub and a raid move the score by the community's weights,
// once each although every one is delivered twice.
func TestEventsMoveScoreOnce(t *testing.T) {
	p := start(t, 0)
	setWeights(t, p, `{"follow": 7, "subscription_tier2": 12, "raid": 3}`)
	publishTwice(t, p, twitchEvent(schemas.KindFollow, bob, nil))
	if got := score(t, p, "twitch:b1"); got != 700 {
		t.Fatalf("after a follow: %d hundredths, want 700", got)
	}
	publishTwice(t, p, twitchEvent(schemas.KindSubscription, bob, &schemas.EventData{Tier: "2000"}))
	if got := score(t, p, "twitch:b1"); got != 1900 {
		t.Fatalf("after a tier 2 sub: %d, want 1900", got)
	}
	raider := carol
	publishTwice(t, p, twitchEvent(schemas.KindRaid, raider, &schemas.EventData{Viewers: 30, Target: &raider}))
	if got := score(t, p, "twitch:c1"); got != 300 {
		t.Fatalf("raider after a raid: %d, want 300", got)
	}
	if n := p.Count(`SELECT count(*) FROM reputation_ledger`); n != 3 {
		t.Errorf("%d ledger entries, want 3", n)
	}
	p.Silent("alice", "", "hi") // alice is known before she asks, so the counts below do not race her chat credit
	expect(t, p, "alice", "", "!rep @bob", "Bob: 619 (fair), #1 of 3 here.")
	expect(t, p, "alice", "", "!rep carol", "Carol: 603 (fair), #2 of 3 here.")

	// The invocation itself redelivered after its result was committed is
	// answered from the outbox and moves nothing.
	invs := natstest.Decode[schemas.Invocation](t, p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(reputation.Name))
	for _, inv := range invs {
		if inv.Event.Kind == schemas.KindFollow {
			actionstest.PublishAs(t, p.Client.JS, &inv, inv.ID+"-redelivered")
		}
	}
	p.Settle()
	if got := score(t, p, "twitch:b1"); got != 1900 {
		t.Errorf("after the follow's invocation was redelivered: %d, want 1900", got)
	}
}

func TestDefaultWeightsAndModeration(t *testing.T) {
	p := start(t, 0)
	ctx := context.Background()
	pub := collectors.NewPublisher(p.Client.JS, nil)
	p.Must(pub.Publish(ctx, twitchEvent(schemas.KindGift, bob, &schemas.EventData{Tier: "1000", Count: 5})))
	p.Must(pub.Publish(ctx, twitchEvent(schemas.KindCheer, bob, &schemas.EventData{Bits: 250})))
	p.Must(pub.Publish(ctx, twitchEvent(schemas.KindCheer, schemas.User{}, &schemas.EventData{Bits: 1000}))) // anonymous
	p.Settle()
	if got := score(t, p, "twitch:b1"); got != 1500+250 {
		t.Fatalf("after a gift of 5 and 250 bits: %d, want 1750", got)
	}
	// Moderation strikes the target, not the moderator who acted.
	target := bob
	p.Must(pub.Publish(ctx, twitchEvent(schemas.KindTimeout, mod, &schemas.EventData{Target: &target, DurationSeconds: 600})))
	p.Settle()
	if got := score(t, p, "twitch:b1"); got != 1750-5000 {
		t.Fatalf("after a timeout: %d, want -3250", got)
	}
	if n := p.Count(`SELECT count(*) FROM reputation_scores WHERE subject = 'twitch:m1'`); n != 0 {
		t.Errorf("the moderator got a score")
	}
	// Bans floor at 300; the floor does not swallow what comes after.
	for range 3 {
		p.Must(pub.Publish(ctx, twitchEvent(schemas.KindBan, mod, &schemas.EventData{Target: &target})))
	}
	p.Silent("alice", "", "hi") // known before she asks: the rank does not race her chat credit
	expect(t, p, "alice", "", "!rep @bob", "Bob: 300 (poor), #2 of 2 here.")
	p.Must(pub.Publish(ctx, twitchEvent(schemas.KindFollow, bob, nil)))
	p.Settle()
	expect(t, p, "alice", "", "!rep @bob", "Bob: 301 (poor), #2 of 2 here.")
}

// Chat earns credit at most once a minute per user, and is written to the
// ledger in batches.
func TestChatCreditThrottledAndBatched(t *testing.T) {
	p := start(t, 2)
	setWeights(t, p, `{"chat": 1}`)
	for _, text := range []string{"hello", "spam", "spam", "spam"} {
		p.Silent("alice", "", text)
	}
	c := p.Community(pipelinetest.DefaultChannel)
	pending := p.Count(`SELECT pending_count FROM reputation_scores WHERE community_id = $1 AND subject = 'console:alice'`, c.ID)
	if pending != 1 {
		t.Fatalf("4 messages in a minute earned %d credits, want 1", pending)
	}
	if n := p.Count(`SELECT count(*) FROM reputation_ledger`); n != 0 {
		t.Fatalf("one credit wrote %d ledger entries before its batch was full", n)
	}
	// Pending credit shows in the score.
	expect(t, p, "alice", "", "!rep", "alice: 601 (fair), #1 of 1 here.")
	p.Silent("dave", "", "hi")
	p.Silent("erin", "", "hi")
	expect(t, p, "dave", "", "!top", "Top reputation: 1. alice 601 · 2. dave 601 · 3. erin 601")
	// dave's second credit can only come a minute later; the batch of two
	// is exercised by the unit tests. Nothing was written one row per message.
	if n := p.Count(`SELECT count(*) FROM reputation_ledger WHERE reason = 'chat'`); n != 0 {
		t.Errorf("%d chat ledger entries, want none yet", n)
	}
}

func TestAdjust(t *testing.T) {
	p := start(t, 0)
	for _, u := range []string{"bob", "carol", "dave"} {
		p.Silent(u, "", "hi") // known through their chat
	}
	expect(t, p, "bob", "", "!rep adjust @carol +50 nice", "Only moderators can adjust reputation.")
	expect(t, p, "bob", "vip", "!rep adjust @carol +50 nice", "Only moderators can adjust reputation.")
	expect(t, p, "mod", "moderator", "!rep adjust @carol +50", "Usage: !rep adjust @user <±n> <reason> (for example !rep adjust @bob +25 ran the raffle).")
	expect(t, p, "mod", "moderator", "!rep adjust @carol lots nice", `"lots" is not an amount: write a whole number of points like +25 or -10.`)
	expect(t, p, "mod", "moderator", "!rep adjust @carol +600 nice", "The amount must be from -550 to +550, and not 0.")
	expect(t, p, "mod", "moderator", "!rep adjust @nobody +5 nice", "I have no record of nobody here yet; they need to chat first.")
	expect(t, p, "mod", "moderator", "!rep adjust @mod +5 me", "You can't adjust your own reputation.")

	expect(t, p, "mod", "moderator", "!rep adjust @carol +100 ran the raffle", "carol's reputation: 600 → 700 (+100: ran the raffle).")
	expect(t, p, "mod", "broadcaster", "!rep adjust bob +50 helped", "bob's reputation: 600 → 650 (+50: helped).")
	expect(t, p, "mod", "moderator", "!rep adjust @dave -20 spam", "dave's reputation: 600 → 580 (-20: spam).")
	expect(t, p, "mod", "moderator", "!rep adjust @carol +550 more", "carol's reputation: 700 → 850 (+550 asked; scores run from 300 to 850: more).")

	c := p.Community(pipelinetest.DefaultChannel)
	log, err := p.Store.AuditLog(context.Background(), c.ID, 10)
	p.Must(err)
	var adjusts []string
	for _, e := range log {
		if e.Action == "reputation.adjust" {
			adjusts = append(adjusts, fmt.Sprintf("%s %s %v %v", e.Actor, e.Target, e.Details["points"], e.Details["reason"]))
		}
	}
	want := []string{"console/mod console:carol 550 more", "console/mod console:dave -20 spam",
		"console/mod console:bob 50 helped", "console/mod console:carol 100 ran the raffle"}
	if strings.Join(adjusts, "|") != strings.Join(want, "|") {
		t.Errorf("audit log:\n got %q\nwant %q", adjusts, want)
	}
	if n := p.Count(`SELECT count(*) FROM reputation_ledger WHERE reason = 'adjust' AND actor = 'console/mod'`); n != 4 {
		t.Errorf("%d adjustments in the ledger, want 4", n)
	}

	expect(t, p, "bob", "", "!top 2", "Top reputation: 1. carol 850 · 2. bob 650")
	expect(t, p, "bob", "", "!top", "Top reputation: 1. carol 850 · 2. bob 650 · 3. mod 600 · 4. dave 580")
	expect(t, p, "bob", "", "!top 50", "Top reputation: 1. carol 850 · 2. bob 650 · 3. mod 600 · 4. dave 580")
	expect(t, p, "bob", "", "!top many", `"many" is not a number of places. Usage: !top [n], n from 1 to 10.`)
	expect(t, p, "bob", "", "!rep", "bob: 650 (fair), #2 of 4 here.")
	expect(t, p, "bob", "", "!rep @dave", "dave: 580 (fair), #4 of 4 here.")
	expect(t, p, "bob", "", "!rep @nobody", "I have no record of nobody here yet; everyone starts at 600.")
	expect(t, p, "bob", "", "!rep b*b", `"b*b" is not a user: name one as @login or mention them. Usage: !rep, !rep @user, !top [n]; moderators: !rep adjust @user <±n> <reason>.`)
	expect(t, p, "bob", "", "!rep a b", "Usage: !rep, !rep @user, !top [n]; moderators: !rep adjust @user <±n> <reason>.")
}

func TestTopEmptyAndNewcomer(t *testing.T) {
	p := start(t, 0)
	setWeights(t, p, `{"chat": 0}`) // chat earns nothing: nobody has a score
	expect(t, p, "alice", "", "!top", "Nobody has a reputation here yet.")
	expect(t, p, "alice", "", "!rep", "alice: 600 (fair). Nothing recorded yet; chatting, following and subscribing raise it.")
}
