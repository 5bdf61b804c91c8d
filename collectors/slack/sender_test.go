package slack

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

func TestSendPostsWithTheTeamsTokenAndThread(t *testing.T) {
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	sndInstall(t, rig.workspaces, "T2", "xoxb-two")
	tests := []struct {
		name, team, thread, wantToken string
	}{
		{name: "first team, in a thread", team: "T1", thread: "1700000000.000001", wantToken: "xoxb-one"},
		{name: "second team, no thread", team: "T2", wantToken: "xoxb-two"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sndReply(tt.team, "hello "+tt.team)
			r.Target.ThreadID = tt.thread
			if err := rig.platform.Send(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			calls := rig.fake.seen("chat.postMessage")
			if len(calls) != i+1 {
				t.Fatalf("chat.postMessage calls = %d, want %d", len(calls), i+1)
			}
			got := calls[i]
			if got.Token != tt.wantToken || got.Form.Get("channel") != "C1" || got.Form.Get("text") != r.Text ||
				got.Form.Get("thread_ts") != tt.thread {
				t.Errorf("chat.postMessage = token %q form %v, want token %q channel C1 text %q thread_ts %q",
					got.Token, got.Form, tt.wantToken, r.Text, tt.thread)
			}
		})
	}
}

func TestSendNeutralizesBroadcastMentions(t *testing.T) {
	tests := []struct{ in, want string }{
		{in: "<!everyone> free pizza", want: "&lt;!everyone> free pizza"},
		{in: "hi <!here|here> and <!channel>", want: "hi &lt;!here|here> and &lt;!channel>"},
		{in: "<!subteam^S123> ping", want: "&lt;!subteam^S123> ping"},
		{in: "thanks <@U123>, 1 < 2", want: "thanks <@U123>, 1 < 2"},
	}
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	for i, tt := range tests {
		if err := rig.platform.Send(t.Context(), sndReply("T1", tt.in)); err != nil {
			t.Fatal(err)
		}
		if got := rig.fake.seen("chat.postMessage")[i].Form.Get("text"); got != tt.want {
			t.Errorf("text of %q sent as %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNeutralizeBroadcasts(f *testing.F) {
	for _, s := range []string{"<!everyone>", "<<!!here>>", "<!channel|x>", "plain", "<@U1>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if out := neutralizeBroadcasts(s); strings.Contains(out, "<!") {
			t.Fatalf("neutralizeBroadcasts(%q) = %q still holds <!", s, out)
		}
	})
}

func TestSendErrorsFollowTheSenderContract(t *testing.T) {
	tests := []struct {
		name      string
		answer    sndAnswer
		want      string
		wantDelay time.Duration
	}{
		{name: "429 with Retry-After", answer: sndAnswer{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "7"}},
			want: "defer", wantDelay: 7 * time.Second},
		{name: "not in channel", answer: sndError("not_in_channel"), want: "permanent"},
		{name: "channel archived", answer: sndError("is_archived"), want: "permanent"},
		{name: "invalid auth", answer: sndError("invalid_auth"), want: "permanent"},
		{name: "server error", answer: sndAnswer{Status: http.StatusInternalServerError, Body: "oops"}, want: "failure"},
		{name: "internal_error", answer: sndError("internal_error"), want: "failure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := sndNewRig(t, "")
			sndInstall(t, rig.workspaces, "T1", "xoxb-one")
			rig.fake.answer("chat.postMessage", tt.answer)
			got, delay := sndOutcome(rig.platform.Send(t.Context(), sndReply("T1", "hello")))
			if got != tt.want || delay != tt.wantDelay {
				t.Errorf("outcome = %s after %s, want %s after %s", got, delay, tt.want, tt.wantDelay)
			}
			// Only a revoked token disconnects the workspace.
			if _, err := rig.workspaces.BotToken(t.Context(), "T1"); err != nil {
				t.Errorf("workspace lost its token after %s: %v", tt.name, err)
			}
		})
	}
}

func TestSendTokenRevokedDisconnectsTheWorkspace(t *testing.T) {
	for _, code := range []string{"token_revoked", "account_inactive"} {
		t.Run(code, func(t *testing.T) {
			rig := sndNewRig(t, "")
			sndInstall(t, rig.workspaces, "T1", "xoxb-one")
			rig.fake.answer("chat.postMessage", sndError(code))
			if got, _ := sndOutcome(rig.platform.Send(t.Context(), sndReply("T1", "hello"))); got != "permanent" {
				t.Fatalf("outcome = %s, want permanent", got)
			}
			if _, err := rig.workspaces.BotToken(t.Context(), "T1"); !errors.Is(err, ErrNotInstalled) {
				t.Fatalf("BotToken after %s = %v, want ErrNotInstalled", code, err)
			}
			ws, err := rig.workspaces.Workspace(t.Context(), "T1")
			if err != nil || ws.Status != StatusUninstalled || ws.Reason != code {
				t.Fatalf("workspace = %+v, %v; want uninstalled because %s", ws, err, code)
			}
			// The next reply is refused without asking Slack.
			if got, _ := sndOutcome(rig.platform.Send(t.Context(), sndReply("T1", "again"))); got != "permanent" {
				t.Fatalf("outcome after disconnect = %s, want permanent", got)
			}
			if n := len(rig.fake.seen("chat.postMessage")); n != 1 {
				t.Errorf("chat.postMessage calls = %d, want 1", n)
			}
		})
	}
}

func TestSendPrivateReplyIsEphemeral(t *testing.T) {
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	r := sndReply("T1", "only for you")
	r.Visibility = schemas.VisibilityPrivate
	if err := rig.platform.Send(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	calls := rig.fake.seen("chat.postEphemeral")
	if len(calls) != 1 || calls[0].Form.Get("user") != "U1" || calls[0].Form.Get("channel") != "C1" || calls[0].Token != "xoxb-one" {
		t.Fatalf("chat.postEphemeral calls = %+v, want one to U1 in C1", calls)
	}
	if n := len(rig.fake.seen("chat.postMessage")); n != 0 {
		t.Errorf("a private reply went to chat.postMessage %d times", n)
	}
	r.Target.UserID = ""
	if got, _ := sndOutcome(rig.platform.Send(t.Context(), r)); got != "permanent" {
		t.Errorf("private reply without a user: outcome %s, want permanent", got)
	}
}

func TestSendToAnUninstalledTeamIsPermanent(t *testing.T) {
	rig := sndNewRig(t, "")
	err := rig.platform.Send(t.Context(), sndReply("T9", "hello"))
	if got, _ := sndOutcome(err); got != "permanent" || !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("Send = %v (%s), want permanent ErrNotInstalled", err, got)
	}
}

// sndResponseURL is a slash command's response URL: it records what is
// posted and answers with status.
type sndResponseURL struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  []map[string]any
	status int
}

func sndNewResponseURL(t *testing.T, status int) *sndResponseURL {
	u := &sndResponseURL{status: status}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.posts = append(u.posts, body)
		u.mu.Unlock()
		w.WriteHeader(u.status)
		if u.status != http.StatusOK {
			_, _ = w.Write([]byte("used_url"))
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func TestSendAnswersASlashCommandThroughItsResponseURL(t *testing.T) {
	tests := []struct {
		name       string
		ephemeral  bool
		visibility schemas.Visibility
		wantType   string
	}{
		{name: "public command", wantType: "in_channel"},
		{name: "command whose manifest says private", ephemeral: true, wantType: "ephemeral"},
		{name: "private reply to a public command", visibility: schemas.VisibilityEphemeral, wantType: "ephemeral"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := sndNewRig(t, "")
			sndInstall(t, rig.workspaces, "T1", "xoxb-one")
			hook := sndNewResponseURL(t, http.StatusOK)
			r := sndReply("T1", "pong <!here>")
			r.Visibility = tt.visibility
			if err := rig.interactions.Put(t.Context(), schemas.PlatformSlack, r.EventID,
				collectors.Interaction{ResponseURL: hook.srv.URL + "/commands/T1/1/abc", Ephemeral: tt.ephemeral}); err != nil {
				t.Fatal(err)
			}
			if err := rig.platform.Send(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			hook.mu.Lock()
			defer hook.mu.Unlock()
			if len(hook.posts) != 1 {
				t.Fatalf("response URL posts = %d, want 1", len(hook.posts))
			}
			want := map[string]any{"text": "pong &lt;!here>", "response_type": tt.wantType, "replace_original": false}
			for k, v := range want {
				if hook.posts[0][k] != v {
					t.Errorf("response %s = %v, want %v", k, hook.posts[0][k], v)
				}
			}
			if n := len(rig.fake.seen("chat.postMessage")) + len(rig.fake.seen("chat.postEphemeral")); n != 0 {
				t.Errorf("the Web API was called %d times too", n)
			}
		})
	}
}

func TestSendFallsBackWhenTheResponseURLIsSpent(t *testing.T) {
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	hook := sndNewResponseURL(t, http.StatusNotFound)
	r := sndReply("T1", "sixth answer")
	if err := rig.interactions.Put(t.Context(), schemas.PlatformSlack, r.EventID,
		collectors.Interaction{ResponseURL: hook.srv.URL, Ephemeral: true}); err != nil {
		t.Fatal(err)
	}
	if err := rig.platform.Send(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	// An ephemeral answer stays ephemeral when it can no longer use the URL.
	if calls := rig.fake.seen("chat.postEphemeral"); len(calls) != 1 || calls[0].Form.Get("text") != "sixth answer" {
		t.Fatalf("chat.postEphemeral calls = %+v, want the answer once", calls)
	}
	if n := len(rig.fake.seen("chat.postMessage")); n != 0 {
		t.Errorf("an ephemeral answer was posted to the channel %d times", n)
	}
}

func TestSendRefusesResponseURLsOffSlacksHost(t *testing.T) {
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	onSlack, err := NewPlatform(PlatformConfig{APIURL: rig.fake.apiURL(), Workspaces: rig.workspaces,
		Interactions: rig.interactions, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	hook := sndNewResponseURL(t, http.StatusOK)
	tests := []struct {
		name        string
		platform    *Platform
		responseURL string
	}{
		{name: "another host", platform: rig.platform, responseURL: "https://evil.example/commands/T1/1/secret"},
		{name: "a host that ends like the allowed one", platform: rig.platform, responseURL: "http://evil127.0.0.1/commands/T1/1/secret"},
		{name: "user info in the URL", platform: rig.platform, responseURL: strings.Replace(hook.srv.URL, "http://", "http://me@", 1) + "/commands/secret"},
		{name: "Slack's host over http", platform: onSlack, responseURL: "http://hooks.slack.com/commands/T1/1/secret"},
		{name: "not Slack's host by default", platform: onSlack, responseURL: hook.srv.URL + "/commands/T1/1/secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := sndReply("T1", "pong "+tt.name)
			if err := rig.interactions.Put(t.Context(), schemas.PlatformSlack, r.EventID,
				collectors.Interaction{ResponseURL: tt.responseURL}); err != nil {
				t.Fatal(err)
			}
			err := tt.platform.Send(t.Context(), r)
			if got, _ := sndOutcome(err); got != "permanent" || !strings.Contains(err.Error(), "refused to post") {
				t.Fatalf("Send = %v (%s), want a permanent refusal", err, got)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the response URL's path: %v", err)
			}
			hook.mu.Lock()
			defer hook.mu.Unlock()
			if len(hook.posts) != 0 {
				t.Errorf("posted %d times", len(hook.posts))
			}
			if n := len(rig.fake.seen("chat.postMessage")); n != 0 {
				t.Errorf("fell back to chat.postMessage %d times", n)
			}
		})
	}
	// Slack's own host over https passes the check (the post itself then
	// fails: there is no network here, or it is refused).
	if _, err := onSlack.checkResponseURL("https://hooks.slack.com/commands/T1/1/secret"); err != nil {
		t.Fatalf("Slack's response URL refused: %v", err)
	}
}

func TestSendResponseURLNetworkErrorHidesTheURL(t *testing.T) {
	rig := sndNewRig(t, "")
	sndInstall(t, rig.workspaces, "T1", "xoxb-one")
	hook := sndNewResponseURL(t, http.StatusOK)
	hook.srv.Close() // nothing listens there any more
	r := sndReply("T1", "pong")
	if err := rig.interactions.Put(t.Context(), schemas.PlatformSlack, r.EventID,
		collectors.Interaction{ResponseURL: hook.srv.URL + "/commands/T1/1/the-secret-part"}); err != nil {
		t.Fatal(err)
	}
	err := rig.platform.Send(t.Context(), r)
	if got, _ := sndOutcome(err); got != "failure" {
		t.Fatalf("Send = %v (%s), want a retryable failure", err, got)
	}
	if strings.Contains(err.Error(), "the-secret-part") || strings.Contains(err.Error(), "/commands/") {
		t.Fatalf("the error shows the response URL: %v", err)
	}
}
