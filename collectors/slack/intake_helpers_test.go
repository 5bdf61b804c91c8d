package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Fixed ids of the intake tests' workspace.
const (
	intakeTeam    = "T0TEAM"
	intakeChannel = "C0CHAN"
	intakeBotUser = "U0BOT"
	intakeHuman   = "U0ALICE"
	intakeSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
)

// intakeWorkspaces is a Workspaces that knows one bot user per team and
// records disconnections.
type intakeWorkspaces struct {
	mu          sync.Mutex
	botUsers    map[string]string
	disconnects []string // "team:reason"
}

func newIntakeWorkspaces() *intakeWorkspaces {
	return &intakeWorkspaces{botUsers: map[string]string{intakeTeam: intakeBotUser}}
}

func (w *intakeWorkspaces) BotToken(_ context.Context, teamID string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.botUsers[teamID]; !ok {
		return "", ErrNotInstalled
	}
	return "xoxb-" + teamID, nil
}

func (w *intakeWorkspaces) BotUserID(_ context.Context, teamID string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.botUsers[teamID]
	if !ok {
		return "", ErrNotInstalled
	}
	return id, nil
}

func (w *intakeWorkspaces) Disconnect(_ context.Context, teamID, reason string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.botUsers, teamID)
	w.disconnects = append(w.disconnects, teamID+":"+reason)
	return nil
}

func (w *intakeWorkspaces) disconnected() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.disconnects...)
}

// intakePublisher records what it publishes; while fail is set it fails,
// and so do its next failTimes attempts.
type intakePublisher struct {
	mu        sync.Mutex
	events    []*schemas.Event
	fail      error
	failTimes int
	attempts  int
}

func (p *intakePublisher) Publish(_ context.Context, ev *schemas.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.fail != nil {
		return p.fail
	}
	if p.failTimes > 0 {
		p.failTimes--
		return errors.New("publish failed (test)")
	}
	if ev.Version == 0 {
		ev.Version = schemas.Version
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now()
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	p.events = append(p.events, ev)
	return nil
}

func (p *intakePublisher) setFail(err error) {
	p.mu.Lock()
	p.fail = err
	p.mu.Unlock()
}

func (p *intakePublisher) failNext(times int) {
	p.mu.Lock()
	p.failTimes = times
	p.mu.Unlock()
}

func (p *intakePublisher) attempted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

func (p *intakePublisher) published() []*schemas.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*schemas.Event(nil), p.events...)
}

// intakeRig is an Intake over a recording publisher, a fake Workspaces and
// the interactions bucket of an embedded NATS.
type intakeRig struct {
	env          *natstest.Env
	intake       *Intake
	pub          *intakePublisher
	workspaces   *intakeWorkspaces
	interactions *collectors.Interactions
}

func newIntakeRig(t *testing.T, manifests ...schemas.Manifest) *intakeRig {
	t.Helper()
	env := natstest.Start(t, nil)
	interactions, err := collectors.OpenInteractions(t.Context(), env.Conn.JS)
	if err != nil {
		t.Fatal(err)
	}
	r := &intakeRig{env: env, pub: &intakePublisher{}, workspaces: newIntakeWorkspaces(), interactions: interactions}
	r.intake = NewIntake(IntakeConfig{Publisher: r.pub, Workspaces: r.workspaces, Interactions: interactions,
		Catalogue: func(context.Context) ([]schemas.Manifest, error) { return manifests, nil },
		Logger:    logging.Discard()})
	return r
}

// newIntakeOnly is an Intake without NATS, for tests that need no
// interactions.
func newIntakeOnly() (*Intake, *intakePublisher, *intakeWorkspaces) {
	pub, ws := &intakePublisher{}, newIntakeWorkspaces()
	return NewIntake(IntakeConfig{Publisher: pub, Workspaces: ws, Logger: logging.Discard()}), pub, ws
}

func intakeLeases(t *testing.T, env *natstest.Env) *coord.Leases {
	t.Helper()
	kv, err := env.Conn.JS.KeyValue(t.Context(), streams.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	l, err := coord.NewLeases(t.Context(), kv, t.Name(), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// callbackBody is an Events API event_callback around inner.
func callbackBody(eventID, inner string) string {
	return `{"token":"legacy","team_id":"` + intakeTeam + `","api_app_id":"A0APP","type":"event_callback",` +
		`"event_id":"` + eventID + `","event_time":1700000000,"event":` + inner + `}`
}

func messageInner(user, text, ts, extra string) string {
	return `{"type":"message","channel":"` + intakeChannel + `","user":"` + user + `","text":` +
		strconv.Quote(text) + `,"ts":"` + ts + `","event_ts":"` + ts + `","channel_type":"channel"` + extra + `}`
}

func mentionInner(user, text, ts, extra string) string {
	return `{"type":"app_mention","channel":"` + intakeChannel + `","user":"` + user + `","text":` +
		strconv.Quote(text) + `,"ts":"` + ts + `","event_ts":"` + ts + `"` + extra + `}`
}

// hookRequest is a request to the Events API signed with secret at sent.
func hookRequest(path, body, secret string, sent time.Time) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	ts := strconv.FormatInt(sent.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + ts + ":" + body))
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}
