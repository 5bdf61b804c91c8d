package slack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

const (
	mbTeam      = "T0MEMBERS"
	mbOtherTeam = "T0OTHER"
	mbBadTeam   = "T0REVOKED"
)

// mbWorkspaces hands out a token per installed team.
type mbWorkspaces struct{}

func (mbWorkspaces) BotToken(_ context.Context, teamID string) (string, error) {
	switch teamID {
	case mbTeam, mbOtherTeam, mbBadTeam:
		return "xoxb-" + teamID, nil
	}
	return "", ErrNotInstalled
}
func (mbWorkspaces) BotUserID(context.Context, string) (string, error) { return "U0BOT", nil }
func (mbWorkspaces) Disconnect(context.Context, string, string) error  { return nil }

type mbUser struct {
	ID      string         `json:"id"`
	TeamID  string         `json:"team_id"`
	Name    string         `json:"name"`
	Deleted bool           `json:"deleted"`
	IsBot   bool           `json:"is_bot"`
	Profile map[string]any `json:"profile"`
}

func mbPerson(id, team, name, display, real string) mbUser {
	return mbUser{ID: id, TeamID: team, Name: name, Profile: map[string]any{"display_name": display, "real_name": real}}
}

// mbSlack is a fake Web API with users.info and users.list (two users a
// page, to exercise the cursor), answering as Slack documents.
type mbSlack struct {
	srv       *httptest.Server
	users     []mbUser
	listCalls atomic.Int32
	mu        sync.Mutex
	failNext  []int // HTTP statuses for the next requests
}

func newMBSlack(t *testing.T) *mbSlack {
	f := &mbSlack{users: []mbUser{
		mbPerson("U0ADA00001", mbTeam, "ada", "Countess", "Ada Lovelace"),
		mbPerson("U0BOB00001", mbTeam, "bob", "", "Bob Builder"),
		mbPerson("U0PAT00001", mbTeam, "pat.one", "Pat", "Pat One"),
		mbPerson("U0PAT00002", mbTeam, "pat.two", "Pat", "Pat Two"),
		mbPerson("U0SAM00001", mbTeam, "sam", "", "Sam"),
		mbPerson("U0SAM00002", mbTeam, "sammy", "sam", "Sammy"),
		{ID: "U0GONE0001", TeamID: mbTeam, Name: "gone", Deleted: true, Profile: map[string]any{"display_name": "Gone"}},
		{ID: "U0BOTTY001", TeamID: mbTeam, Name: "botty", IsBot: true, Profile: map[string]any{"display_name": "Botty"}},
		{ID: "USLACKBOT", TeamID: mbTeam, Name: "slackbot", Profile: map[string]any{"display_name": "Slackbot"}},
		mbPerson("U0ELSE0001", mbOtherTeam, "elsewhere", "", "Else Where"),
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("/users.info", f.guard(f.serveInfo))
	mux.HandleFunc("/users.list", f.guard(f.serveList))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *mbSlack) failWith(status int) {
	f.mu.Lock()
	f.failNext = append(f.failNext, status)
	f.mu.Unlock()
}

func (f *mbSlack) guard(h func(w http.ResponseWriter, r *http.Request, team string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		var fail int
		if len(f.failNext) > 0 {
			fail, f.failNext = f.failNext[0], f.failNext[1:]
		}
		f.mu.Unlock()
		if fail != 0 {
			w.WriteHeader(fail)
			return
		}
		_ = r.ParseForm()
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" {
			token = r.Form.Get("token")
		}
		team, _ := strings.CutPrefix(token, "xoxb-")
		w.Header().Set("Content-Type", "application/json")
		if team == "" || team == mbBadTeam {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
			return
		}
		h(w, r, team)
	}
}

func (f *mbSlack) serveInfo(w http.ResponseWriter, r *http.Request, _ string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.ID == r.Form.Get("user") {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "user": u})
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "user_not_found"})
}

func (f *mbSlack) serveList(w http.ResponseWriter, r *http.Request, team string) {
	f.listCalls.Add(1)
	var members []mbUser
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.users {
		if u.TeamID == team {
			members = append(members, u)
		}
	}
	start := 0
	if c := r.Form.Get("cursor"); c != "" {
		start = int(c[0] - '0')
	}
	end := min(start+2, len(members))
	next := ""
	if end < len(members) {
		next = string(rune('0' + end))
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "members": members[start:end],
		"response_metadata": map[string]any{"next_cursor": next}})
}

// mbServe serves the API against the fake and returns a function asking
// wb.api.slack.member.
func mbServe(t *testing.T, f *mbSlack) func(args map[string]string) schemas.APIResponse {
	t.Helper()
	return mbServeAt(t, f, nil)
}

// mbServeAt is mbServe with a clock.
func mbServeAt(t *testing.T, f *mbSlack, now func() time.Time) func(args map[string]string) schemas.APIResponse {
	t.Helper()
	dir, err := NewMemberDirectory(MemberDirectoryConfig{APIURL: f.srv.URL, Workspaces: mbWorkspaces{}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	nenv := natstest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeAPI(ctx, APIConfig{Conn: nenv.Conn, Members: dir, Logger: logging.Discard()}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeAPI = %v", err)
		}
	})
	client := natstest.Connect(t, nenv.Server)
	subject := schemas.APISubject(schemas.PlatformSlack, OpMember)
	return func(args map[string]string) schemas.APIResponse {
		t.Helper()
		body, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: "req-1", Operation: OpMember, Args: args})
		if err != nil {
			t.Fatal(err)
		}
		var msg *nats.Msg
		for range 500 {
			msg, err = client.NC.Request(subject, body, 10*time.Second)
			if !errors.Is(err, nats.ErrNoResponders) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		var resp schemas.APIResponse
		if err := json.Unmarshal(msg.Data, &resp); err != nil {
			t.Fatalf("undecodable answer %s: %v", msg.Data, err)
		}
		if err := resp.Validate(); err != nil {
			t.Fatalf("invalid answer %s: %v", msg.Data, err)
		}
		return resp
	}
}

func TestSlackMemberLookup(t *testing.T) {
	f := newMBSlack(t)
	ask := mbServe(t, f)
	tests := []struct {
		name      string
		args      map[string]string
		wantData  string
		wantError string
	}{
		{name: "by username", args: map[string]string{"server_id": mbTeam, "name": "ADA"},
			wantData: `{"id":"U0ADA00001","login":"ada","display_name":"Countess"}`},
		{name: "by @username", args: map[string]string{"server_id": mbTeam, "name": "@bob"},
			wantData: `{"id":"U0BOB00001","login":"bob","display_name":"Bob Builder"}`},
		{name: "by display name", args: map[string]string{"server_id": mbTeam, "name": "countess"},
			wantData: `{"id":"U0ADA00001","login":"ada","display_name":"Countess"}`},
		{name: "by real name", args: map[string]string{"server_id": mbTeam, "name": "bob builder"},
			wantData: `{"id":"U0BOB00001","login":"bob","display_name":"Bob Builder"}`},
		{name: "by mention", args: map[string]string{"server_id": mbTeam, "name": "<@U0BOB00001>"},
			wantData: `{"id":"U0BOB00001","login":"bob","display_name":"Bob Builder"}`},
		{name: "by labelled mention", args: map[string]string{"server_id": mbTeam, "name": "<@U0ADA00001|ada>"},
			wantData: `{"id":"U0ADA00001","login":"ada","display_name":"Countess"}`},
		{name: "by bare id", args: map[string]string{"server_id": mbTeam, "name": "U0ADA00001"},
			wantData: `{"id":"U0ADA00001","login":"ada","display_name":"Countess"}`},
		{name: "by user_id", args: map[string]string{"server_id": mbTeam, "user_id": "U0ADA00001"},
			wantData: `{"id":"U0ADA00001","login":"ada","display_name":"Countess"}`},
		{name: "username wins over a display name", args: map[string]string{"server_id": mbTeam, "name": "Sam"},
			wantData: `{"id":"U0SAM00001","login":"sam","display_name":"Sam"}`},
		{name: "ambiguous display name", args: map[string]string{"server_id": mbTeam, "name": "pat"}, wantError: "invalid"},
		{name: "unknown name", args: map[string]string{"server_id": mbTeam, "name": "nobody"}, wantError: "not_found"},
		{name: "deactivated by name", args: map[string]string{"server_id": mbTeam, "name": "gone"}, wantError: "not_found"},
		{name: "deactivated by id", args: map[string]string{"server_id": mbTeam, "user_id": "U0GONE0001"}, wantError: "not_found"},
		{name: "bot by name", args: map[string]string{"server_id": mbTeam, "name": "botty"}, wantError: "not_found"},
		{name: "slackbot by id", args: map[string]string{"server_id": mbTeam, "user_id": "USLACKBOT"}, wantError: "not_found"},
		{name: "another workspace's user by id", args: map[string]string{"server_id": mbTeam, "name": "<@U0ELSE0001>"}, wantError: "not_found"},
		{name: "another workspace's user by name", args: map[string]string{"server_id": mbTeam, "name": "elsewhere"}, wantError: "not_found"},
		{name: "unknown id", args: map[string]string{"server_id": mbTeam, "user_id": "U0NOBODY01"}, wantError: "not_found"},
		{name: "workspace not installed", args: map[string]string{"server_id": "T0NOTHERE", "name": "ada"}, wantError: "unauthorized"},
		{name: "token refused", args: map[string]string{"server_id": mbBadTeam, "name": "ada"}, wantError: "unauthorized"},
		{name: "token refused by id", args: map[string]string{"server_id": mbBadTeam, "user_id": "U0ADA00001"}, wantError: "unauthorized"},
		{name: "no server", args: map[string]string{"name": "ada"}, wantError: "invalid"},
		{name: "no name", args: map[string]string{"server_id": mbTeam}, wantError: "invalid"},
		{name: "bad user_id", args: map[string]string{"server_id": mbTeam, "user_id": "ada"}, wantError: "invalid"},
		{name: "channel mention", args: map[string]string{"server_id": mbTeam, "name": "<@C0CHANNEL>"}, wantError: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ask(tt.args)
			if tt.wantError != "" {
				if resp.Error == nil || resp.Error.Code != tt.wantError || resp.Error.Message == "" {
					t.Fatalf("answer = %+v (data %s), want error %s", resp.Error, resp.Data, tt.wantError)
				}
				if tt.wantError == "invalid" && strings.Contains(tt.name, "ambiguous") &&
					(!strings.Contains(resp.Error.Message, "ambiguous") || !strings.Contains(resp.Error.Message, "mention")) {
					t.Fatalf("message %q does not say ambiguous and to mention", resp.Error.Message)
				}
				return
			}
			if resp.Error != nil {
				t.Fatalf("error = %v", resp.Error)
			}
			if string(resp.Data) != tt.wantData {
				t.Fatalf("data = %s, want %s", resp.Data, tt.wantData)
			}
		})
	}
	// Every name lookup of mbTeam after the first read the cached list
	// (mbTeam has 9 users: 5 pages).
	if n := f.listCalls.Load(); n != 5 {
		t.Errorf("users.list called %d times, want one listing of 5 pages", n)
	}
}

func TestSlackMemberLookupHTTPFailures(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   string
	}{
		{http.StatusUnauthorized, "unauthorized"},
		{http.StatusForbidden, "unauthorized"},
		{http.StatusTooManyRequests, "rate_limited"},
		{http.StatusInternalServerError, "unavailable"},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			f := newMBSlack(t)
			ask := mbServe(t, f)
			if resp := ask(map[string]string{"server_id": mbTeam}); resp.Error == nil {
				t.Fatal("probe answered data")
			}
			f.failWith(tt.status)
			resp := ask(map[string]string{"server_id": mbTeam, "name": "ada"})
			if resp.Error == nil || resp.Error.Code != tt.want {
				t.Fatalf("answer = %+v (data %s), want %s", resp.Error, resp.Data, tt.want)
			}
			// A failed listing is not cached.
			if resp := ask(map[string]string{"server_id": mbTeam, "name": "ada"}); resp.Error != nil {
				t.Fatalf("after the failure: %v", resp.Error)
			}
		})
	}
}

// A name missing from a list older than memberListRecheck is looked for
// in a new list (someone who just joined); a younger list is trusted.
func TestSlackMemberListRecheck(t *testing.T) {
	f := newMBSlack(t)
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	ask := mbServeAt(t, f, func() time.Time { return time.Unix(0, clock.Load()) })
	if resp := ask(map[string]string{"server_id": mbTeam, "name": "ada"}); resp.Error != nil {
		t.Fatal(resp.Error)
	}
	calls := f.listCalls.Load()
	f.mu.Lock()
	f.users = append(f.users, mbPerson("U0NEW00001", mbTeam, "newbie", "", "New Bie"))
	f.mu.Unlock()
	clock.Add(int64(10 * time.Second))
	if resp := ask(map[string]string{"server_id": mbTeam, "name": "newbie"}); resp.Error == nil || resp.Error.Code != "not_found" {
		t.Fatalf("with a 10 s old list: %+v %s, want not_found", resp.Error, resp.Data)
	}
	if f.listCalls.Load() != calls {
		t.Fatal("a young list was listed again")
	}
	clock.Add(int64(memberListRecheck))
	if resp := ask(map[string]string{"server_id": mbTeam, "name": "newbie"}); resp.Error != nil {
		t.Fatalf("with an old list: %v, want the newcomer found", resp.Error)
	}
}

func FuzzSlackParseMemberName(f *testing.F) {
	for _, s := range []string{"ada", "@ada", "<@U0ADA00001>", "<@U0ADA00001|ada>", "<@C0CHAN>", "U0ADA00001",
		"<!here>", " @ spaced ", "<@>", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, name := parseMemberName(s)
		if id != "" && !userIDRE.MatchString(id) {
			t.Fatalf("id %q from %q is not a user id", id, s)
		}
		trimmed := strings.TrimSpace(s)
		if id == "" && name != "" && strings.HasPrefix(trimmed, "<@") && strings.HasSuffix(trimmed, ">") {
			t.Fatalf("a mention %q read as name %q", s, name)
		}
	})
}

func TestSlackParseMemberName(t *testing.T) {
	tests := []struct{ in, id, name string }{
		{"ada", "", "ada"},
		{" @Ada ", "", "Ada"},
		{"<@U0ADA00001>", "U0ADA00001", ""},
		{"<@W0ADA00001|ada>", "W0ADA00001", ""},
		{"<@C0CHAN>", "", ""},
		{"U0ADA00001", "U0ADA00001", "U0ADA00001"},
		{"Ursula", "", "Ursula"},
	}
	for _, tt := range tests {
		if id, name := parseMemberName(tt.in); id != tt.id || name != tt.name {
			t.Errorf("parseMemberName(%q) = %q, %q, want %q, %q", tt.in, id, name, tt.id, tt.name)
		}
	}
}
