package slack

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// lkSlowWorkspaces answers BotUserID for team lkSlowTeam only once
// released; other teams answer at once.
type lkSlowWorkspaces struct {
	*intakeWorkspaces
	release chan struct{}
	mu      sync.Mutex
	asked   int
}

const lkSlowTeam = "T0SLOW"

func (w *lkSlowWorkspaces) BotUserID(ctx context.Context, teamID string) (string, error) {
	if teamID == lkSlowTeam {
		w.mu.Lock()
		w.asked++
		w.mu.Unlock()
		<-w.release // ignores ctx, as a stuck driver call might
		return "U0SLOWBOT", nil
	}
	return w.intakeWorkspaces.BotUserID(ctx, teamID)
}

func (w *lkSlowWorkspaces) askedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asked
}

func lkMessage(team, eventID, text, ts string) slackevents.EventsAPIEvent {
	return slackevents.EventsAPIEvent{Type: slackevents.CallbackEvent, TeamID: team,
		Data: &slackevents.EventsAPICallbackEvent{EventID: eventID},
		InnerEvent: slackevents.EventsAPIInnerEvent{Type: "message", Data: &slackevents.MessageEvent{
			Type: "message", Channel: intakeChannel, User: intakeHuman, Text: text, TimeStamp: ts}}}
}

// A team whose bot user lookup is stuck holds up neither another team's
// events nor its own past the caller's context.
func TestBotUserLookupIsPerTeamAndBounded(t *testing.T) {
	ws := &lkSlowWorkspaces{intakeWorkspaces: newIntakeWorkspaces(), release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(ws.release)
		}
	}
	t.Cleanup(release)
	pub := &intakePublisher{}
	in := NewIntake(IntakeConfig{Publisher: pub, Workspaces: ws, Logger: logging.Discard()})

	slowDone := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		slowDone <- in.HandleEvent(ctx, lkSlowTeam, lkMessage(lkSlowTeam, "EvL1", "!ping", "1700000300.000100"))
	}()
	natstest.Eventually(t, 10*time.Second, "the slow team's lookup started", func() bool { return ws.askedCount() == 1 })

	fastDone := make(chan error, 1)
	go func() {
		fastDone <- in.HandleEvent(t.Context(), intakeTeam, lkMessage(intakeTeam, "EvL2", "<@U0BOT> !ping", "1700000301.000100"))
	}()
	select {
	case err := <-fastDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("another team's event waited for the stuck lookup")
	}
	cancel()
	select {
	case err := <-slowDone:
		if err == nil && len(pub.published()) != 2 {
			t.Fatalf("published %d events", len(pub.published()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow team's event ignored its cancelled context")
	}
	var fast *schemas.Event
	for _, ev := range pub.published() {
		if ev.Channel.ServerID == intakeTeam {
			fast = ev
		}
	}
	if fast == nil || fast.Text != "!ping" {
		t.Fatalf("the other team's event = %+v, want it published with the mention stripped", fast)
	}

	// Concurrent events of the slow team share the running lookup.
	_ = in.HandleEvent(ctx, lkSlowTeam, lkMessage(lkSlowTeam, "EvL3", "hi", "1700000302.000100"))
	if n := ws.askedCount(); n != 1 {
		t.Fatalf("BotUserID asked %d times while one lookup was running, want 1", n)
	}
	release()
}

// Once known, a team's bot user is used at once while a refresh is slow.
func TestBotUserStaleIDServedWhileRefreshing(t *testing.T) {
	ws := &lkSlowWorkspaces{intakeWorkspaces: newIntakeWorkspaces(), release: make(chan struct{})}
	close(ws.release)
	var mu sync.Mutex
	now := time.Unix(1700000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	pub := &intakePublisher{}
	in := NewIntake(IntakeConfig{Publisher: pub, Workspaces: ws, Logger: logging.Discard(), Now: clock})
	if id := in.botUserID(t.Context(), lkSlowTeam); id != "U0SLOWBOT" {
		t.Fatalf("first lookup = %q", id)
	}
	// Past the TTL, with the refresh stuck and a cancelled context.
	ws.release = make(chan struct{})
	t.Cleanup(func() { close(ws.release) })
	mu.Lock()
	now = now.Add(botUserIDTTL + time.Second)
	mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if id := in.botUserID(ctx, lkSlowTeam); id != "U0SLOWBOT" {
		t.Fatalf("stale lookup = %q, want the cached id while refreshing", id)
	}
	natstest.Eventually(t, 10*time.Second, "the refresh started", func() bool { return ws.askedCount() == 2 })
}

// lkUsersInfo is a users.info fake: users by id, and how often each was
// asked for.
type lkUsersInfo struct {
	srv   *httptest.Server
	mu    sync.Mutex
	asked map[string]int
	users map[string]map[string]any
}

func lkNewUsersInfo(t *testing.T) *lkUsersInfo {
	t.Helper()
	f := &lkUsersInfo{asked: map[string]int{}, users: map[string]map[string]any{
		"U0OWNER":   {"id": "U0OWNER", "is_owner": true},
		"U0PRIMARY": {"id": "U0PRIMARY", "is_owner": true, "is_primary_owner": true, "is_admin": true},
		"U0ADMIN":   {"id": "U0ADMIN", "is_admin": true},
		intakeHuman: {"id": intakeHuman},
	}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		user := r.Form.Get("user")
		f.mu.Lock()
		f.asked[user]++
		u, ok := f.users[user]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		token := r.Form.Get("token")
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = bearer
		}
		if r.URL.Path != "/users.info" || token != "xoxb-"+intakeTeam {
			_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
			return
		}
		if !ok {
			_, _ = w.Write([]byte(`{"ok":false,"error":"user_not_found"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "user": u})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *lkUsersInfo) askedFor(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[user]
}

func TestUserRolesFromUsersInfo(t *testing.T) {
	fake := lkNewUsersInfo(t)
	dir, err := NewUserDirectory(UserDirectoryConfig{APIURL: fake.srv.URL, Workspaces: newIntakeWorkspaces(),
		Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		team, user string
		want       schemas.Role
	}{
		{team: intakeTeam, user: "U0OWNER", want: schemas.RoleBroadcaster},
		{team: intakeTeam, user: "U0PRIMARY", want: schemas.RoleBroadcaster},
		{team: intakeTeam, user: "U0ADMIN", want: schemas.RoleModerator},
		{team: intakeTeam, user: intakeHuman, want: schemas.RoleMember},
		{team: intakeTeam, user: "U0GONE", want: schemas.RoleMember},        // users.info refuses
		{team: "T0NOTINSTALLED", user: "U0OWNER", want: schemas.RoleMember}, // no token
	}
	for _, tt := range tests {
		for range 2 {
			roles := dir.Roles(t.Context(), tt.team, tt.user)
			if len(roles) != 1 || roles[0] != tt.want {
				t.Fatalf("%s/%s: roles %v, want %s", tt.team, tt.user, roles, tt.want)
			}
		}
	}
	for _, user := range []string{"U0OWNER", "U0ADMIN", "U0GONE"} {
		if n := fake.askedFor(user); n != 1 {
			t.Errorf("users.info asked %d times for %s, want 1 (cached)", n, user)
		}
	}
}

func TestIntakeUsesUserRoles(t *testing.T) {
	fake := lkNewUsersInfo(t)
	ws := newIntakeWorkspaces()
	dir, err := NewUserDirectory(UserDirectoryConfig{APIURL: fake.srv.URL, Workspaces: ws, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	pub := &intakePublisher{}
	in := NewIntake(IntakeConfig{Publisher: pub, Workspaces: ws, Users: dir, Logger: logging.Discard()})
	ev := lkMessage(intakeTeam, "EvU1", "!ping", "1700000400.000100")
	ev.InnerEvent.Data.(*slackevents.MessageEvent).User = "U0ADMIN"
	if err := in.HandleEvent(t.Context(), "", ev); err != nil {
		t.Fatal(err)
	}
	mention := slackevents.EventsAPIEvent{Type: slackevents.CallbackEvent, TeamID: intakeTeam,
		Data: &slackevents.EventsAPICallbackEvent{EventID: "EvU2"},
		InnerEvent: slackevents.EventsAPIInnerEvent{Type: "app_mention", Data: &slackevents.AppMentionEvent{
			Type: "app_mention", Channel: intakeChannel, User: "U0OWNER", Text: "<@U0BOT> !ping", TimeStamp: "1700000401.000100"}}}
	if err := in.HandleEvent(t.Context(), "", mention); err != nil {
		t.Fatal(err)
	}
	cmd := slashCommandOf(intakeTeam, "U0PRIMARY", "trig-roles")
	if err := in.HandleSlash(t.Context(), cmd); err != nil {
		t.Fatal(err)
	}
	got := pub.published()
	want := []schemas.Role{schemas.RoleModerator, schemas.RoleBroadcaster, schemas.RoleBroadcaster}
	if len(got) != len(want) {
		t.Fatalf("published %d events, want %d", len(got), len(want))
	}
	for i, ev := range got {
		if len(ev.User.Roles) != 1 || ev.User.Roles[0] != want[i] {
			t.Errorf("event %d (%s by %s): roles %v, want %s", i, ev.Kind, ev.User.ID, ev.User.Roles, want[i])
		}
	}
}

func slashCommandOf(team, user, trigger string) slack.SlashCommand {
	return slack.SlashCommand{TeamID: team, ChannelID: intakeChannel, UserID: user, Command: "/waddlebot",
		Text: "ping", TriggerID: trigger}
}
