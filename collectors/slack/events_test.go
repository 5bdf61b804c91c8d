package slack

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// hookServer mounts the Events API endpoints on a mux.
func hookServer(t *testing.T, in *Intake) http.Handler {
	t.Helper()
	events, err := NewEvents(EventsConfig{SigningSecret: intakeSecret, Intake: in, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	events.Mount(mux)
	return mux
}

func hookServe(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestEventsSignature(t *testing.T) {
	body := callbackBody("EvS1", messageInner(intakeHuman, "!ping", "1700000001.000100", ""))
	now := time.Now()
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{name: "signed now", req: hookRequest(EventsPath, body, intakeSecret, now), status: http.StatusOK},
		{name: "signed 4 minutes ago", req: hookRequest(EventsPath, body, intakeSecret, now.Add(-4*time.Minute)), status: http.StatusOK},
		{name: "wrong secret", req: hookRequest(EventsPath, body, "another-secret", now), status: http.StatusUnauthorized},
		{name: "stale: 6 minutes old", req: hookRequest(EventsPath, body, intakeSecret, now.Add(-6*time.Minute)), status: http.StatusUnauthorized},
		{name: "6 minutes ahead", req: hookRequest(EventsPath, body, intakeSecret, now.Add(6*time.Minute)), status: http.StatusUnauthorized},
		{name: "body changed after signing", req: func() *http.Request {
			r := hookRequest(EventsPath, body, intakeSecret, now)
			r.Body = http.NoBody
			return r
		}(), status: http.StatusUnauthorized},
		{name: "no signature headers", req: httptest.NewRequest(http.MethodPost, EventsPath, strings.NewReader(body)), status: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, pub, _ := newIntakeOnly()
			rec := hookServe(hookServer(t, in), tt.req)
			if rec.Code != tt.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.status)
			}
			wantPublished := 0
			if tt.status == http.StatusOK {
				wantPublished = 1
			}
			if got := len(pub.published()); got != wantPublished {
				t.Fatalf("published %d events, want %d", got, wantPublished)
			}
		})
	}
}

func TestEventsURLVerification(t *testing.T) {
	in, _, _ := newIntakeOnly()
	body := `{"token":"legacy","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}`
	rec := hookServe(hookServer(t, in), hookRequest(EventsPath, body, intakeSecret, time.Now()))
	if rec.Code != http.StatusOK || rec.Body.String() != "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" {
		t.Fatalf("status %d body %q", rec.Code, rec.Body)
	}
}

func TestEventsRetryHandledOnce(t *testing.T) {
	in, pub, _ := newIntakeOnly()
	h := hookServer(t, in)
	body := callbackBody("EvR1", messageInner(intakeHuman, "!ping", "1700000002.000100", ""))

	pub.setFail(errors.New("nats down"))
	if rec := hookServe(h, hookRequest(EventsPath, body, intakeSecret, time.Now())); rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d while publishing failed, want 500 so Slack retries", rec.Code)
	}
	pub.setFail(nil)
	if rec := hookServe(h, hookRequest(EventsPath, body, intakeSecret, time.Now())); rec.Code != http.StatusOK {
		t.Fatalf("first retry: status %d", rec.Code)
	}
	// A later retry of the same event_id whose inner event has another
	// ts: its event id would differ, so only the Slack event_id dedupe can
	// drop it.
	changed := callbackBody("EvR1", messageInner(intakeHuman, "!ping", "1700000003.000100", ""))
	req := hookRequest(EventsPath, changed, intakeSecret, time.Now())
	req.Header.Set("X-Slack-Retry-Num", "1")
	req.Header.Set("X-Slack-Retry-Reason", "http_error")
	if rec := hookServe(h, req); rec.Code != http.StatusOK {
		t.Fatalf("retry: status %d", rec.Code)
	}
	if got := pub.published(); len(got) != 1 {
		t.Fatalf("published %d events, want 1", len(got))
	}
}

// evStuckPublisher never returns until released, whatever its context says:
// the handler must answer on its own clock.
type evStuckPublisher struct{ release chan struct{} }

func (p *evStuckPublisher) Publish(context.Context, *schemas.Event) error {
	<-p.release
	return nil
}

func TestEventsAnsweredWithinTheDeadline(t *testing.T) {
	stuck := &evStuckPublisher{release: make(chan struct{})}
	t.Cleanup(func() { close(stuck.release) })
	in := NewIntake(IntakeConfig{Publisher: stuck, Workspaces: newIntakeWorkspaces(), Logger: logging.Discard()})
	events, err := NewEvents(EventsConfig{SigningSecret: intakeSecret, Intake: in, AnswerWithin: 50 * time.Millisecond,
		Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	events.Mount(mux)

	body := callbackBody("EvD1", messageInner(intakeHuman, "!ping", "1700000004.000100", ""))
	if rec := hookServe(mux, hookRequest(EventsPath, body, intakeSecret, time.Now())); rec.Code != http.StatusInternalServerError {
		t.Fatalf("event: status %d, want 500 so Slack retries", rec.Code)
	}
	rec := hookServe(mux, hookRequest(CommandsPath, slashForm("ping"), intakeSecret, time.Now()))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ephemeral"`) {
		t.Fatalf("slash command: status %d body %q; want 200 with an ephemeral apology", rec.Code, rec.Body)
	}
}

func TestEventsBodies(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
	}{
		{name: "unknown inner type", body: callbackBody("EvB1", `{"type":"no_such_event"}`), status: http.StatusOK},
		{name: "rate limited notice", body: `{"token":"legacy","type":"app_rate_limited","team_id":"T0TEAM","minute_rate_limited":1518467820,"api_app_id":"A0APP"}`, status: http.StatusOK},
		{name: "not JSON", body: `{"type":`, status: http.StatusBadRequest},
		{name: "callback without event", body: `{"type":"event_callback","team_id":"T0TEAM","event_id":"EvB2"}`, status: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, pub, _ := newIntakeOnly()
			rec := hookServe(hookServer(t, in), hookRequest(EventsPath, tt.body, intakeSecret, time.Now()))
			if rec.Code != tt.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.status)
			}
			if got := len(pub.published()); got != 0 {
				t.Fatalf("published %d events", got)
			}
		})
	}
}

func slashForm(text string) string {
	return url.Values{
		"token": {"legacy"}, "team_id": {intakeTeam}, "team_domain": {"penguins"},
		"channel_id": {intakeChannel}, "channel_name": {"general"}, "user_id": {intakeHuman}, "user_name": {"alice"},
		"command": {"/waddlebot"}, "text": {text}, "response_url": {"https://hooks.slack.test/commands/T0TEAM/1/abc"},
		"trigger_id": {"13345224609.738474920.8088930838d88f008e0"}, "api_app_id": {"A0APP"},
	}.Encode()
}

func TestEventsSlashCommand(t *testing.T) {
	rig := newIntakeRig(t, schemas.Manifest{Name: "core", Version: "1.0.0", Commands: []schemas.CommandSpec{
		{Name: "ping", Permission: "everyone"},
		{Name: "whoami", Permission: "everyone", Visibility: schemas.VisibilityPrivate},
	}})
	h := hookServer(t, rig.intake)
	tests := []struct {
		text      string
		ephemeral bool
	}{
		{text: "ping  now ", ephemeral: false},
		{text: "whoami", ephemeral: true},
	}
	for _, tt := range tests {
		body := strings.Replace(slashForm(tt.text), "8088930838d88f008e0", "trig-"+url.QueryEscape(strings.Fields(tt.text)[0]), 1)
		rec := hookServe(h, hookRequest(CommandsPath, body, intakeSecret, time.Now()))
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
			t.Fatalf("%s: status %d body %q; want an empty 200", tt.text, rec.Code, rec.Body)
		}
		got := rig.pub.published()
		ev := got[len(got)-1]
		if ev.Kind != schemas.KindCommand || ev.Text != strings.TrimSpace(tt.text) || ev.Channel.ServerID != intakeTeam ||
			ev.User.Login != intakeHuman {
			t.Fatalf("%s: event %+v", tt.text, ev)
		}
		in, ok, err := rig.interactions.Get(t.Context(), "slack", ev.ID)
		if err != nil || !ok {
			t.Fatalf("%s: interaction %v %v", tt.text, ok, err)
		}
		if in.ResponseURL != "https://hooks.slack.test/commands/T0TEAM/1/abc" || in.Ephemeral != tt.ephemeral {
			t.Fatalf("%s: interaction %+v, want ephemeral %v", tt.text, in, tt.ephemeral)
		}
	}

	stale := hookRequest(CommandsPath, slashForm("ping"), intakeSecret, time.Now().Add(-6*time.Minute))
	if rec := hookServe(h, stale); rec.Code != http.StatusUnauthorized {
		t.Fatalf("stale slash command: status %d", rec.Code)
	}
	rig.pub.setFail(errors.New("nats down"))
	rec := hookServe(h, hookRequest(CommandsPath, slashForm("ping"), intakeSecret, time.Now()))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ephemeral"`) {
		t.Fatalf("failed publish: status %d body %q; want an ephemeral apology", rec.Code, rec.Body)
	}
}
