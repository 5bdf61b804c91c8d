package slack

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// sndCall is one Web API call the fake saw.
type sndCall struct {
	Method string
	Token  string
	Form   url.Values
	// Refused: the fake answered with an error (an HTTP error or ok false).
	Refused bool
}

// sndAnswer is a canned Web API answer.
type sndAnswer struct {
	Status int
	Header map[string]string
	Body   string
}

// sndFake is slacktest's server with the methods these tests look at
// replaced by recording handlers: slacktest's own chat.postMessage answers
// every token alike, and it has no oauth.v2.access.
type sndFake struct {
	srv *slacktest.Server

	mu    sync.Mutex
	calls []sndCall
	// answers, by method, are given in turn (the last one repeats);
	// without one a method answers ok.
	answers map[string][]sndAnswer
	// identities is what auth.test says for a token; other tokens are
	// invalid_auth.
	identities map[string]sndIdentity
}

type sndIdentity struct{ TeamID, TeamName, UserID string }

func sndNewFake(t *testing.T) *sndFake {
	t.Helper()
	f := &sndFake{answers: map[string][]sndAnswer{}, identities: map[string]sndIdentity{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		for _, m := range []string{"chat.postMessage", "chat.postEphemeral", "auth.test", "oauth.v2.access"} {
			c.Handle("/"+m, f.handler(m))
		}
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *sndFake) apiURL() string { return f.srv.GetAPIURL() }

func (f *sndFake) answer(method string, answers ...sndAnswer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[method] = answers
}

func (f *sndFake) identity(token string, id sndIdentity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.identities[token] = id
}

func (f *sndFake) seen(method string) []sndCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sndCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *sndFake) handler(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		token := r.PostForm.Get("token")
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = bearer
		}
		f.mu.Lock()
		var a *sndAnswer
		if queue := f.answers[method]; len(queue) > 0 {
			a = &queue[0]
			if len(queue) > 1 {
				f.answers[method] = queue[1:]
			}
		}
		id, known := f.identities[token]
		refused := a != nil && (a.Status != http.StatusOK || !strings.Contains(a.Body, `"ok":true`))
		f.calls = append(f.calls, sndCall{Method: method, Token: token, Form: r.PostForm, Refused: refused})
		f.mu.Unlock()

		w.Header().Set("Content-Type", "application/json")
		if a != nil {
			for k, v := range a.Header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(a.Status)
			_, _ = w.Write([]byte(a.Body))
			return
		}
		switch method {
		case "auth.test":
			if !known {
				_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "team_id": id.TeamID, "team": id.TeamName,
				"user_id": id.UserID, "user": "waddlebot"})
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": r.PostForm.Get("channel"), "ts": "1700000000.000100"})
		}
	}
}

// sndError is a Web API refusal: HTTP 200 with ok false.
func sndError(code string) sndAnswer {
	return sndAnswer{Status: http.StatusOK, Body: `{"ok":false,"error":"` + code + `"}`}
}

// sndRig is a sender over the fake with a real WorkspaceStore and
// Interactions bucket.
type sndRig struct {
	fake         *sndFake
	workspaces   *WorkspaceStore
	interactions *collectors.Interactions
	platform     *Platform
}

func sndNewRig(t *testing.T, staticToken string) *sndRig {
	t.Helper()
	fake := sndNewFake(t)
	ws := NewWorkspaceStore(storetest.New(t), fake.apiURL(), staticToken, nil)
	env := natstest.Start(t, nil)
	in, err := collectors.OpenInteractions(t.Context(), env.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	// Response URLs in these tests are httptest servers on 127.0.0.1.
	p, err := NewPlatform(PlatformConfig{APIURL: fake.apiURL(), Workspaces: ws, Interactions: in,
		ResponseURLHost: "127.0.0.1", Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return &sndRig{fake: fake, workspaces: ws, interactions: in, platform: p}
}

// sndOutcome names how the consume loop treats a Send error.
func sndOutcome(err error) (string, time.Duration) { return consume.Outcome(err) }

// sndReply is a public reply to a message in team's channel C1.
func sndReply(team, text string) *schemas.Reply {
	return &schemas.Reply{Version: 1, ID: schemas.NewEventID(), InvocationID: schemas.NewEventID(),
		EventID: schemas.EventID(schemas.PlatformSlack, team+"-"+text), Text: text, Part: 1, Parts: 1,
		Target: schemas.Target{Platform: schemas.PlatformSlack, ServerID: team, ChannelID: "C1", UserID: "U1"}}
}

// sndInstall saves an installed workspace with token.
func sndInstall(t *testing.T, ws *WorkspaceStore, team, token string) {
	t.Helper()
	if err := ws.Save(t.Context(), Workspace{TeamID: team, TeamName: "Team " + team, BotUserID: "B" + team}, token); err != nil {
		t.Fatal(err)
	}
}
