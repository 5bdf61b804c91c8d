package identity_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/actions/identity"
	"github.com/waddlebot/waddlebot/actions/reputation"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

// Where the tests chat: one community with a Twitch channel, a Discord
// server and (when asked) a Slack workspace.
var (
	twitchChan  = schemas.Channel{ID: "tw-1", Name: "streamer"}
	discordChan = schemas.Channel{ID: "d-chan", ServerID: "g-1", Name: "general"}
	slackChan   = schemas.Channel{ID: "C-1", ServerID: "T-1", Name: "general"}
)

// People, by platform.
var (
	bobTwitch   = schemas.User{ID: "tb1", Login: "bob", DisplayName: "Bob"}
	bobDiscord  = schemas.User{ID: "db1", Login: "bobd", DisplayName: "Bob D"}
	bobSlack    = schemas.User{ID: "UB1", Login: "bob.s", DisplayName: "Bob S"}
	carolTwitch = schemas.User{ID: "tc1", Login: "carol", DisplayName: "Carol"}
	modDiscord  = schemas.User{ID: "dm1", Login: "moddy", DisplayName: "Moddy", Roles: []schemas.Role{schemas.RoleModerator}}
)

// fakeAPI answers wb.api lookups as the collectors do, from tables.
type fakeAPI struct {
	mu      sync.Mutex
	twitch  map[string]schemas.User            // by login
	members map[string]map[string]schemas.User // server → name → user
	failing string                             // a platform whose lookups fail as unavailable
	refuse  string                             // a name answered "invalid" (ambiguous)
}

func (f *fakeAPI) serve(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.Subscribe("wb.api.*.*", func(msg *nats.Msg) {
		var req schemas.APIRequest
		_ = json.Unmarshal(msg.Data, &req)
		resp := schemas.APIResponse{Version: schemas.Version, ID: req.ID}
		data, apiErr := f.answer(msg.Subject, req)
		if apiErr != nil {
			resp.Error = apiErr
		} else {
			resp.Data, _ = json.Marshal(map[string]string{"id": data.ID, "login": data.Login, "display_name": data.DisplayName})
		}
		body, _ := json.Marshal(resp)
		_ = msg.Respond(body)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
}

func (f *fakeAPI) answer(subject string, req schemas.APIRequest) (schemas.User, *schemas.APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	platform := strings.Split(subject, ".")[2]
	if platform == f.failing {
		return schemas.User{}, &schemas.APIError{Code: "unavailable", Message: "the platform answered 503"}
	}
	switch {
	case platform == schemas.PlatformTwitch && req.Operation == "user_by_login":
		if u, ok := f.twitch[strings.ToLower(req.Args["login"])]; ok {
			return u, nil
		}
	case req.Operation == "member":
		name := req.Args["name"]
		if name == f.refuse {
			return schemas.User{}, &schemas.APIError{Code: "invalid", Message: "Several members are called " + name + "; use a mention."}
		}
		for key, u := range f.members[req.Args["server_id"]] {
			if key == strings.ToLower(strings.TrimPrefix(name, "@")) || name == "<@"+u.ID+">" {
				return u, nil
			}
		}
	default:
		return schemas.User{}, &schemas.APIError{Code: "invalid", Message: "no such operation"}
	}
	return schemas.User{}, &schemas.APIError{Code: "not_found", Message: "no such user"}
}

func (f *fakeAPI) setFailing(platform string) {
	f.mu.Lock()
	f.failing = platform
	f.mu.Unlock()
}

type harness struct {
	t       *testing.T
	p       *pipelinetest.Pipeline
	clock   *clock.Fake
	api     *fakeAPI
	publish *collectors.Publisher
}

func start(t *testing.T, withSlack bool) *harness {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 3, 1, 18, 0, 0, 0, time.UTC))
	req := &actionstest.LazyRequester{}
	p := pipelinetest.Start(t, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{
			func(st *store.Store) actions.Module {
				return identity.New(identity.Config{Store: st, Requester: req, Clock: clk, LookupTimeout: 5 * time.Second, Logger: logging.Discard()})
			},
			func(st *store.Store) actions.Module { return reputation.New(reputation.Config{Store: st}) },
		},
		Clock:      clk,
		TuneRouter: func(c *router.Config) { c.UserRateLimit, c.ChannelRateLimit = 100000, 100000 },
	})
	req.Connect(p.Env.Connect(t).NC)
	h := &harness{t: t, p: p, clock: clk, publish: collectors.NewPublisher(p.Client.JS, logging.Discard()),
		api: &fakeAPI{
			twitch: map[string]schemas.User{"bob": bobTwitch, "carol": carolTwitch},
			members: map[string]map[string]schemas.User{
				discordChan.ServerID: {"bobd": bobDiscord, "bob d": bobDiscord, "moddy": modDiscord},
				slackChan.ServerID:   {"bob.s": bobSlack},
			}}}
	h.api.serve(t, p.Env.Connect(t).NC)
	ctx := context.Background()
	c := p.Community(pipelinetest.DefaultChannel)
	channels := []store.Channel{
		{Platform: schemas.PlatformTwitch, ChannelID: twitchChan.ID, Name: twitchChan.Name},
		{Platform: schemas.PlatformDiscord, ChannelID: discordChan.ServerID, ServerID: discordChan.ServerID, Name: "the server"},
		{Platform: schemas.PlatformDiscord, ChannelID: discordChan.ID, ServerID: discordChan.ServerID, Name: discordChan.Name},
	}
	if withSlack {
		channels = append(channels, store.Channel{Platform: schemas.PlatformSlack, ChannelID: slackChan.ID, ServerID: slackChan.ServerID, Name: slackChan.Name})
	}
	for _, ch := range channels {
		p.Must(p.Store.ClaimChannel(ctx, "test", c.ID, ch))
	}
	return h
}

// channelOf is the test channel of a platform.
func channelOf(platform string) schemas.Channel {
	switch platform {
	case schemas.PlatformTwitch:
		return twitchChan
	case schemas.PlatformDiscord:
		return discordChan
	}
	return slackChan
}

// publishOn publishes an event as the platform's collector would.
func (h *harness) publishOn(platform string, ev *schemas.Event) {
	h.t.Helper()
	ev.Platform = platform
	ev.Channel = channelOf(platform)
	ev.ID = schemas.NewEventID()
	ev.PlatformEventID = ev.ID
	ev.OccurredAt = time.Now().UTC()
	h.p.Must(h.publish.Publish(context.Background(), ev))
}

// say types text on a platform and returns the text of the replies to it.
func (h *harness) say(platform string, user schemas.User, text string) string {
	h.t.Helper()
	ev := &schemas.Event{Kind: schemas.KindChat, User: user, Text: text}
	h.publishOn(platform, ev)
	var texts []string
	natstest.Eventually(h.t, pipelinetest.Wait, "a reply to "+text, func() bool {
		texts = texts[:0]
		for _, r := range h.replies() {
			if r.EventID == ev.ID {
				texts = append(texts, r.Text)
			}
		}
		return len(texts) > 0
	})
	h.p.Settle()
	return strings.Join(texts, "\n")
}

func (h *harness) expect(platform string, user schemas.User, text, want string) {
	h.t.Helper()
	if got := h.say(platform, user, text); got != want {
		h.t.Errorf("%s on %s says %q:\n got %q\nwant %q", user.Login, platform, text, got, want)
	}
}

func (h *harness) replies() []schemas.Reply {
	return natstest.Decode[schemas.Reply](h.t, h.p.Client.JS, schemas.StreamReplies, "")
}

var codePattern = regexp.MustCompile(`link code: ([A-Z0-9]{6})\.`)

// privateCodes are the codes sent so far to a platform user, oldest first;
// every message carrying one must be private, on that user's platform, and
// answer no event (it is nobody's public reply).
func (h *harness) privateCodes(platform string, user schemas.User) []string {
	h.t.Helper()
	var codes []string
	for _, r := range h.replies() {
		m := codePattern.FindStringSubmatch(r.Text)
		if m == nil {
			continue
		}
		if r.Target.UserID != user.ID || r.Target.Platform != platform {
			continue
		}
		if r.Visibility != schemas.VisibilityPrivate || r.EventID != "" {
			h.t.Errorf("a code went out as %q (event %q): %+v", r.Visibility, r.EventID, r)
		}
		codes = append(codes, m[1])
	}
	return codes
}

// noPublicCode checks that no reply that is not private carries a code.
func (h *harness) noPublicCode() {
	h.t.Helper()
	for _, r := range h.replies() {
		if codePattern.MatchString(r.Text) && r.Visibility != schemas.VisibilityPrivate {
			h.t.Errorf("a code went out in public: %+v", r)
		}
	}
}

// link asks for a code from one account to another and returns it.
func (h *harness) link(fromPlatform string, from schemas.User, toPlatform string, to schemas.User, typed string) string {
	h.t.Helper()
	before := len(h.privateCodes(toPlatform, to))
	got := h.say(fromPlatform, from, "!link "+toPlatform+" "+typed)
	if !strings.HasPrefix(got, "I sent a code privately to "+to.DisplayName) {
		h.t.Fatalf("!link %s %s: %q", toPlatform, typed, got)
	}
	codes := h.privateCodes(toPlatform, to)
	if len(codes) != before+1 {
		h.t.Fatalf("%d codes sent to %s on %s, want %d", len(codes), to.Login, toPlatform, before+1)
	}
	return codes[len(codes)-1]
}

// A user linked on Twitch and Discord sees one score from either, which
// counts what each account earned before; labels follow too.
func TestLinkedUserSeesOneScore(t *testing.T) {
	h := start(t, false)
	c := h.p.Community(pipelinetest.DefaultChannel)
	h.p.Must(h.p.Store.SetModule(context.Background(), "test", c.ID, reputation.Name, true, json.RawMessage(`{"follow": 7}`)))
	h.p.Must(h.p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))

	// Before linking: each account has its own score.
	h.publishOn(schemas.PlatformTwitch, &schemas.Event{Kind: schemas.KindFollow, User: bobTwitch})
	h.p.Settle()
	h.expect(schemas.PlatformTwitch, bobTwitch, "!rep", "Bob: 607 (fair), #1 of 1 here.")
	h.say(schemas.PlatformDiscord, bobDiscord, "!whoami") // seen on Discord, so a moderator can name bobd
	h.expect(schemas.PlatformDiscord, modDiscord, "!rep adjust @bobd +20 ran the quiz", "bobd's reputation: 600 → 620 (+20: ran the quiz).")
	h.expect(schemas.PlatformDiscord, bobDiscord, "!rep", "Bob D: 620 (fair), #1 of 3 here.")
	h.p.Must(h.p.Store.InTx(context.Background(), func(tx pgx.Tx) error {
		return h.p.Store.AddLabel(context.Background(), tx, c.ID, schemas.PlatformTwitch, "bob", "regular", "test", 5)
	}))
	h.p.Must(h.p.Client.NC.Publish(schemas.ControlCommunity(c.ID), nil))

	code := h.link(schemas.PlatformTwitch, bobTwitch, schemas.PlatformDiscord, bobDiscord, "bobd")
	h.expect(schemas.PlatformTwitch, bobTwitch, "!verify "+strings.ToLower(code[:3])+"-"+code[3:],
		"Linked: Bob D on Discord is you too. Your reputation and labels now follow you on both.")
	h.noPublicCode()

	h.expect(schemas.PlatformTwitch, bobTwitch, "!rep", "Bob: 627 (fair), #1 of 2 here.")
	h.expect(schemas.PlatformDiscord, bobDiscord, "!rep", "Bob D: 627 (fair), #1 of 2 here.")
	h.expect(schemas.PlatformDiscord, modDiscord, "!rep bob", "Bob: 627 (fair), #1 of 2 here.")
	// Activity on either account now moves the one score.
	h.publishOn(schemas.PlatformTwitch, &schemas.Event{Kind: schemas.KindFollow, User: bobTwitch})
	h.p.Settle()
	h.expect(schemas.PlatformDiscord, bobDiscord, "!rep", "Bob D: 634 (fair), #1 of 2 here.")
	var sum int
	sum = h.p.Count(`SELECT coalesce(sum(delta), 0)::int FROM reputation_ledger WHERE community_id = $1`, c.ID)
	if total := h.p.Count(`SELECT coalesce(sum(total), 0)::int FROM reputation_scores WHERE community_id = $1`, c.ID); sum != total {
		t.Errorf("the ledger sums to %d, the scores to %d", sum, total)
	}

	// The router resolves the person into the invocation, with the labels
	// of every linked account.
	h.say(schemas.PlatformDiscord, bobDiscord, "!whoami")
	invs := natstest.Decode[schemas.Invocation](t, h.p.Client.JS, schemas.StreamCommands, schemas.CommandSubject(identity.Name))
	last := invs[len(invs)-1]
	if last.PersonID == "" || last.Event.User.ID != bobDiscord.ID || strings.Join(last.Labels, ",") != "regular" {
		t.Errorf("Discord invocation: person %q, labels %v; want a person and [regular]", last.PersonID, last.Labels)
	}
	h.expect(schemas.PlatformDiscord, bobDiscord, "!whoami", "You are Bob D on Discord, linked with Bob on Twitch.")
	h.expect(schemas.PlatformTwitch, bobTwitch, "!whoami", "You are Bob on Twitch, linked with Bob D on Discord.")

	// Unlinking splits them again: the person keeps the score on the
	// account that stays.
	h.expect(schemas.PlatformTwitch, bobTwitch, "!unlink discord", "Unlinked Bob D on Discord.")
	h.expect(schemas.PlatformDiscord, bobDiscord, "!whoami", "You are Bob D on Discord, not linked to other platforms. Link one with !link <twitch|discord|slack> <account>.")
	h.expect(schemas.PlatformTwitch, bobTwitch, "!rep", "Bob: 634 (fair), #1 of 2 here.")
	if n := h.p.Count(`SELECT count(*) FROM audit_log WHERE action IN ('identity.link', 'identity.unlink')`); n != 2 {
		t.Errorf("%d identity audit entries, want 2", n)
	}
}

// Every refusal of !link, !verify and !unlink, with what the user is told.
func TestRefusals(t *testing.T) {
	h := start(t, false)
	tw, dc := schemas.PlatformTwitch, schemas.PlatformDiscord
	usage := "Usage: !link <twitch|discord|slack> <account>, for example !link discord yourname."
	h.expect(tw, bobTwitch, "!link", usage)
	h.expect(tw, bobTwitch, "!link discord", usage)
	h.expect(tw, bobTwitch, "!link myspace bob", `I can link accounts on Twitch, Discord and Slack, not "myspace". `+usage)
	h.expect(tw, bobTwitch, "!link twitch carol", "You're on Twitch already: link an account on another platform.")
	h.expect(tw, bobTwitch, "!link slack bob.s", "This community has no Slack workspace connected, so I can't reach a Slack account from here.")
	h.expect(tw, bobTwitch, "!link discord nobody", "I can't find nobody in this community's Discord server.")
	h.api.mu.Lock()
	h.api.refuse = "sam"
	h.api.mu.Unlock()
	h.expect(tw, bobTwitch, "!link discord sam", "Several members are called sam; use a mention.")
	h.expect(dc, bobDiscord, "!link twitch b@d!", `"b@d!" is not a Twitch login (letters, digits and _, at most 25).`)
	h.expect(dc, bobDiscord, "!link twitch nobody", "Twitch has no user nobody.")
	h.api.setFailing(tw)
	h.expect(dc, bobDiscord, "!link twitch bob", "I can't reach Twitch right now; try again in a minute.")
	h.api.setFailing("")
	if n := h.p.Count(`SELECT count(*) FROM identity_link_codes`); n != 0 {
		t.Errorf("%d codes stored after refusals, want 0", n)
	}
	h.expect(tw, bobTwitch, "!verify 12", "Usage: !verify <code>, with the 6-character code I sent to your other account.")
	h.expect(tw, bobTwitch, "!verify ABC234", "You have no link waiting. Start with !link <twitch|discord|slack> <account>.")
	h.expect(tw, bobTwitch, "!unlink", "Usage: !unlink <twitch|discord|slack>.")
	h.expect(tw, bobTwitch, "!unlink discord", "You have no linked accounts.")

	// A code: only the account that asked can use it, a resend waits, and
	// five wrong tries spend it.
	code := h.link(tw, bobTwitch, dc, bobDiscord, "@BobD")
	h.clock.Advance(20 * time.Second)
	h.expect(tw, bobTwitch, "!link discord bobd", "I sent you a code 20 seconds ago; you can ask for a new one in 40 seconds.")
	h.expect(tw, carolTwitch, "!verify "+code, "You have no link waiting. Start with !link <twitch|discord|slack> <account>.")
	wrong := "ZZZZZZ"
	if code == wrong {
		wrong = "YYYYYY"
	}
	for left := 4; left >= 1; left-- {
		want := "That code is wrong; " + map[bool]string{true: "1 try", false: string(rune('0'+left)) + " tries"}[left == 1] + " left."
		h.expect(tw, bobTwitch, "!verify "+wrong, want)
	}
	h.expect(tw, bobTwitch, "!verify "+wrong, "That code is wrong, and that was the last try. Ask for a new one with !link discord bobd.")
	h.expect(tw, bobTwitch, "!verify "+code, "You have no link waiting. Start with !link <twitch|discord|slack> <account>.")

	// A code expires after ten minutes.
	h.clock.Advance(time.Minute)
	code = h.link(tw, bobTwitch, dc, bobDiscord, "bobd")
	h.expect(tw, bobTwitch, "!whoami", "You are Bob on Twitch, not linked to other platforms. Link one with !link <twitch|discord|slack> <account>. A code for Bob D on Discord is waiting (10 minutes left): !verify <code>.")
	h.clock.Advance(identity.CodeTTL + time.Second)
	h.expect(tw, bobTwitch, "!verify "+code, "Your code has expired. Ask for a new one with !link discord bobd.")

	// An account links to one person only, and a person has one account
	// per platform.
	h.clock.Advance(time.Minute)
	code = h.link(tw, bobTwitch, dc, bobDiscord, "bobd")
	h.expect(tw, bobTwitch, "!verify "+code, "Linked: Bob D on Discord is you too. Your reputation and labels now follow you on both.")
	h.expect(tw, carolTwitch, "!link discord bobd", "Bob D on Discord is linked to someone else already; it can be linked again only once it is unlinked.")
	h.clock.Advance(time.Minute)
	h.expect(tw, bobTwitch, "!link discord moddy", "Your Discord account Bob D is linked already; !unlink discord first to link another.")
	h.expect(dc, bobDiscord, "!link twitch bob", "Bob on Twitch is linked to you already.")
	h.expect(tw, bobTwitch, "!unlink slack", "You have no Slack account linked.")
	h.expect(dc, bobDiscord, "!unlink discord", "This Discord account is no longer linked to your other accounts.")
	h.expect(tw, bobTwitch, "!whoami", "You are Bob on Twitch, not linked to other platforms. Link one with !link <twitch|discord|slack> <account>.")
	h.noPublicCode()
}

// Codes reach Slack as an ephemeral message in a channel of the
// community's workspace, and Discord as a DM; linking works from Slack.
func TestCodesReachEachPlatformPrivately(t *testing.T) {
	h := start(t, true)
	sl, dc := schemas.PlatformSlack, schemas.PlatformDiscord
	code := h.link(dc, bobDiscord, sl, bobSlack, "<@UB1>")
	_ = code
	var slackMsg, discordMsg *schemas.Reply
	for _, r := range h.replies() {
		if codePattern.MatchString(r.Text) {
			r := r
			if r.Target.Platform == sl {
				slackMsg = &r
			}
		}
	}
	if slackMsg == nil || slackMsg.Target.ChannelID != slackChan.ID || slackMsg.Target.ServerID != slackChan.ServerID ||
		slackMsg.Subject() != schemas.ReplySubject(sl, slackChan.ID) {
		t.Fatalf("the Slack code went to %+v, want user UB1 in channel %s of %s", slackMsg, slackChan.ID, slackChan.ServerID)
	}
	if !strings.Contains(slackMsg.Text, "Bob D on Discord asked to link this account") || !strings.Contains(slackMsg.Text, "!verify "+code) {
		t.Errorf("Slack code message: %q", slackMsg.Text)
	}
	h.expect(dc, bobDiscord, "!verify "+code, "Linked: Bob S on Slack is you too. Your reputation and labels now follow you on both.")

	h.clock.Advance(time.Minute)
	code = h.link(sl, bobSlack, schemas.PlatformTwitch, bobTwitch, "bob")
	for _, r := range h.replies() {
		if codePattern.MatchString(r.Text) && r.Target.Platform == dc {
			r := r
			discordMsg = &r
		}
	}
	if discordMsg != nil {
		t.Errorf("a code went to Discord: %+v", discordMsg)
	}
	h.expect(sl, bobSlack, "!verify "+code, "Linked: Bob on Twitch is you too. Your reputation and labels now follow you on both.")
	h.expect(schemas.PlatformTwitch, bobTwitch, "!whoami", "You are Bob on Twitch, linked with Bob D on Discord, Bob S on Slack.")
}
