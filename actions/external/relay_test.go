package external_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/actions/external"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsauth"
	"github.com/waddlebot/waddlebot/internal/natsauth/natsauthtest"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
)

const wait = 20 * time.Second

type rig struct {
	t         *testing.T
	env       *natsauthtest.Env
	st        *store.Store
	relay     *external.Relay
	community schemas.Community
}

// start runs the router (as admin) and the relay (under its own scoped
// user) against an operator-mode server loaded from the generated config.
func start(t *testing.T, client *http.Client, tune ...func(*external.Config)) *rig {
	t.Helper()
	env := natsauthtest.Start(t)
	st := storetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, env: env, st: st}
	c, err := st.ResolveChannel(ctx, store.Channel{Platform: schemas.PlatformConsole, ChannelID: "main", Name: "main"})
	if err != nil {
		t.Fatal(err)
	}
	r.community = c

	d := config.Defaults()
	rt, err := router.New(router.Config{Conn: env.Mint(t, "router", natsauth.RouterPermissions()), Store: st, Concurrency: 8, MaxFailures: 3,
		Backoff: []time.Duration{20 * time.Millisecond}, UserRateLimit: d.UserRateLimit, UserRateWindow: d.UserRateWindow,
		ChannelRateLimit: d.ChannelRateLimit, ChannelRateWindow: d.ChannelRateWindow, CacheTTL: 50 * time.Millisecond,
		AliasDepth: d.AliasDepth, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	relayConn := env.Mint(t, "relay", natsauth.RelayPermissions())
	rcfg := external.Config{Conn: relayConn, Store: st, ResultTimeout: 2 * time.Second,
		WebhookTimeout: 2 * time.Second, MaxFailures: 3, Backoff: []time.Duration{10 * time.Millisecond},
		Refresh: 50 * time.Millisecond, HTTPClient: client, Logger: logging.Discard()}
	for _, f := range tune {
		f(&rcfg)
	}
	relay, err := external.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	r.relay = relay
	done := make(chan struct{}, 2)
	go func() { _ = rt.Run(ctx); done <- struct{}{} }()
	go func() {
		if err := relay.Run(ctx); err != nil {
			t.Errorf("relay: %v", err)
		}
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	natstest.Eventually(t, wait, "the router", rt.Ready)
	natstest.Eventually(t, wait, "the relay", relay.Ready)
	return r
}

func manifest(name string) schemas.Manifest {
	return schemas.Manifest{Name: name, Version: "1.0.0", External: true,
		Commands: []schemas.CommandSpec{{Name: name, Usage: "#" + name, Permission: "everyone"}}}
}

// add registers and enables a module and waits for the relay to serve it.
func (r *rig) add(name, kind, url string, secret []byte) {
	r.t.Helper()
	ctx := context.Background()
	if err := r.st.AddExternalModule(ctx, "test", manifest(name), kind, url, secret, nil); err != nil {
		r.t.Fatal(err)
	}
	if err := r.st.SetModule(ctx, "test", r.community.ID, name, true, nil); err != nil {
		r.t.Fatal(err)
	}
	if err := r.env.Admin.NC.Publish(schemas.ControlRegistry, []byte(name)); err != nil {
		r.t.Fatal(err)
	}
	natstest.Eventually(r.t, wait, "the relay to serve "+name, func() bool { return r.relay.Serving(name) })
}

func (r *rig) say(text string) (*schemas.Event, []schemas.Reply) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var ev *schemas.Event
	var replies []schemas.Reply
	// The router may not have refreshed its catalogue yet: retry until the
	// command is known.
	natstest.Eventually(r.t, wait, "a reply to "+text, func() bool {
		var err error
		ev, replies, err = console.SayAndWait(ctx, r.env.Admin, console.Message{Channel: "main", User: "alice", Text: text},
			console.SayOptions{Wait: 6 * time.Second, Quiet: 150 * time.Millisecond})
		return err == nil && len(replies) > 0
	})
	return ev, replies
}

// serveNATS runs an external NATS module under its minted creds: answer
// decides the result for each invocation (nil: do not answer).
func serveNATS(t *testing.T, conn *natsx.Conn, module string, answer func(inv *schemas.Invocation) *schemas.Result) {
	t.Helper()
	_, err := conn.NC.Subscribe(natsauth.ExternalInvokeSubject(module), func(m *nats.Msg) {
		var inv schemas.Invocation
		if err := json.Unmarshal(m.Data, &inv); err != nil {
			t.Errorf("module got junk: %v", err)
			return
		}
		res := answer(&inv)
		if res == nil {
			return
		}
		data, _ := json.Marshal(res)
		_ = conn.NC.Publish(schemas.ResultSubject(module), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.NC.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestNATSModuleAnswersEndToEnd(t *testing.T) {
	r := start(t, nil)
	r.add("weather", store.ExternalNATS, "", nil)
	creds, err := r.env.Setup.MintUser("weather", natsauth.ExternalModulePermissions("weather"))
	if err != nil {
		t.Fatal(err)
	}
	mod := r.env.Connect(t, creds)
	serveNATS(t, mod, "weather", func(inv *schemas.Invocation) *schemas.Result {
		return &schemas.Result{Version: schemas.Version, InvocationID: inv.ID,
			Replies: []schemas.ReplyText{{Text: "sunny in " + strings.Join(inv.Args, " ")}}}
	})
	ev, replies := r.say("#weather paris")
	if len(replies) != 1 || replies[0].Text != "sunny in paris" {
		t.Fatalf("replies %+v", replies)
	}
	if replies[0].EventID != ev.ID || replies[0].Target.Platform != schemas.PlatformConsole {
		t.Fatalf("reply not aimed at the invocation's own target: %+v", replies[0])
	}
	if r.relay.Relayed() != 1 || r.relay.Refused() != 0 {
		t.Fatalf("relayed %d refused %d", r.relay.Relayed(), r.relay.Refused())
	}

	// A built-in part serves under its own scoped user too.
	w, err := actions.NewWorker(actions.Config{Module: core.New(core.Config{Catalogue: r.st, Version: "test"}),
		Conn: r.env.Mint(t, "action-core", natsauth.ActionPermissions("core")), Store: r.st, Logger: logging.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	natstest.Eventually(t, wait, "core to serve", w.Ready)
	if _, replies := r.say("!ping"); !strings.Contains(strings.ToLower(replies[0].Text), "pong") {
		t.Fatalf("!ping got %+v", replies)
	}
}

func TestRelayRefusesForgedResults(t *testing.T) {
	r := start(t, nil)
	r.add("weather", store.ExternalNATS, "", nil)
	r.add("other", store.ExternalNATS, "", nil)
	held := make(chan *schemas.Invocation, 4)
	weather := r.env.Mint(t, "weather", natsauth.ExternalModulePermissions("weather"))
	serveNATS(t, weather, "weather", func(inv *schemas.Invocation) *schemas.Result { held <- inv; return nil })
	other := r.env.Mint(t, "other", natsauth.ExternalModulePermissions("other"))

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var inv *schemas.Invocation
	natstest.Eventually(t, wait, "weather to get an invocation", func() bool {
		if _, _, err := console.SayAndWait(ctx, r.env.Admin, console.Message{Channel: "main", User: "bob", Text: "#weather oslo"},
			console.SayOptions{NoWait: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case inv = <-held:
			return true
		case <-time.After(time.Second):
			return false
		}
	})

	forged := []struct {
		name string
		conn *natsx.Conn
		subj string
		res  schemas.Result
	}{
		{"another module's invocation", other, schemas.ResultSubject("other"),
			schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Replies: []schemas.ReplyText{{Text: "forged"}}}},
		{"another community", weather, schemas.ResultSubject("weather"),
			schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Overlays: []schemas.OverlayItem{{CommunityID: "0190a0a0-0000-7000-8000-000000000001", Source: "ticker"}}}},
		{"unknown invocation", weather, schemas.ResultSubject("weather"),
			schemas.Result{Version: schemas.Version, InvocationID: "0190a0a0-0000-7000-8000-0000000000ff", Replies: []schemas.ReplyText{{Text: "forged"}}}},
		{"naming another module", weather, schemas.ResultSubject("weather"),
			schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: "other", Replies: []schemas.ReplyText{{Text: "forged"}}}},
	}
	for i, f := range forged {
		data, _ := json.Marshal(f.res)
		if err := f.conn.NC.Publish(f.subj, data); err != nil {
			t.Fatal(err)
		}
		natstest.Eventually(t, wait, f.name+" refused", func() bool { return r.relay.Refused() == int64(i+1) })
	}
	if err := weather.NC.Publish(schemas.ResultSubject("weather"), []byte(`{"version":1,"invocation_id":"nope"}`)); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, wait, "junk refused", func() bool { return r.relay.Refused() == int64(len(forged)+1) })

	// The genuine answer still goes through, once.
	good, _ := json.Marshal(schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Replies: []schemas.ReplyText{{Text: "rain in oslo"}}})
	for range 2 {
		if err := weather.NC.Publish(schemas.ResultSubject("weather"), good); err != nil {
			t.Fatal(err)
		}
	}
	natstest.Eventually(t, wait, "the answer relayed and its copy refused", func() bool {
		return r.relay.Relayed() == 1 && r.relay.Refused() == int64(len(forged)+2)
	})
	var texts []string
	for _, rep := range natstest.Decode[schemas.Reply](t, r.env.Admin.JS, schemas.StreamReplies, "") {
		texts = append(texts, rep.Text)
	}
	if strings.Join(texts, "|") != "rain in oslo" {
		t.Fatalf("replies %q", texts)
	}
	if n := len(natstest.Messages(t, r.env.Admin.JS, schemas.StreamOverlay, "")); n != 0 {
		t.Fatalf("%d overlay items leaked", n)
	}
}

func TestWebhookModule(t *testing.T) {
	secret := []byte("s3cret")
	var calls atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := external.Verify(req, secret, time.Now(), time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var inv schemas.Invocation
		if err := json.Unmarshal(body, &inv); err != nil {
			http.Error(w, "bad invocation", http.StatusBadRequest)
			return
		}
		switch inv.Module {
		case "flaky":
			if calls.Add(1) == 1 {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
		case "strict":
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(schemas.Result{Version: schemas.Version, InvocationID: inv.ID,
			Replies: []schemas.ReplyText{{Text: inv.Module + " says hi"}}})
	}))
	t.Cleanup(srv.Close)
	r := start(t, srv.Client())
	r.add("hook", store.ExternalWebhook, srv.URL, secret)
	r.add("flaky", store.ExternalWebhook, srv.URL, secret)
	r.add("strict", store.ExternalWebhook, srv.URL, secret)

	if _, replies := r.say("#hook"); replies[0].Text != "hook says hi" {
		t.Fatalf("replies %+v", replies)
	}
	if _, replies := r.say("#flaky"); replies[0].Text != "flaky says hi" {
		t.Fatalf("replies %+v", replies)
	}
	if calls.Load() != 2 {
		t.Fatalf("flaky called %d times, want a 503 then a success", calls.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, _, err := console.SayAndWait(ctx, r.env.Admin, console.Message{Channel: "main", User: "carol", Text: "#strict"},
		console.SayOptions{NoWait: true}); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, wait, "the 404 dead-lettered", func() bool {
		for _, d := range natstest.Decode[schemas.DeadLetter](t, r.env.Admin.JS, schemas.StreamDLQ, "") {
			if strings.Contains(d.Reason, "404") && d.Failures <= 1 {
				return true
			}
		}
		return false
	})
}

func TestVerifyRejectsBadSignatures(t *testing.T) {
	secret := []byte("k")
	now := time.Unix(1_800_000_000, 0)
	body := `{"hello":1}`
	ts := "1800000000"
	tests := []struct {
		name    string
		ts, sig string
		body    string
		wantErr bool
	}{
		{"good", ts, external.Sign(secret, ts, []byte(body)), body, false},
		{"other secret", ts, external.Sign([]byte("x"), ts, []byte(body)), body, true},
		{"body changed", ts, external.Sign(secret, ts, []byte(body)), body + " ", true},
		{"stale timestamp", "1799990000", external.Sign(secret, "1799990000", []byte(body)), body, true},
		{"no prefix", ts, strings.TrimPrefix(external.Sign(secret, ts, []byte(body)), "sha256="), body, true},
		{"bad timestamp", "soon", external.Sign(secret, "soon", []byte(body)), body, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			req.Header.Set(external.HeaderTimestamp, tc.ts)
			req.Header.Set(external.HeaderSignature, tc.sig)
			got, err := external.Verify(req, secret, now, time.Minute)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil && !errors.Is(err, external.ErrBadSignature) {
				t.Fatalf("err %v is not ErrBadSignature", err)
			}
			if err == nil && string(got) != tc.body {
				t.Fatalf("body %q", got)
			}
		})
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add([]byte(`{"version":1,"invocation_id":"0190a0a0-0000-7000-8000-000000000001","replies":[{"text":"hi"}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"invocation_id":"0190a0a0-0000-7000-8000-000000000001"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := external.DecodeResult(data)
		if err != nil {
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := res.Validate(); err != nil {
			t.Fatalf("decoded result does not validate: %v", err)
		}
	})
}

func TestNATSModuleSilentIsRetriedThenDeadLettered(t *testing.T) {
	r := start(t, nil, func(c *external.Config) { c.ResultTimeout = 100 * time.Millisecond })
	r.add("mute", store.ExternalNATS, "", nil)
	var got atomic.Int32
	mod := r.env.Mint(t, "mute", natsauth.ExternalModulePermissions("mute"))
	seen := make(chan string, 16)
	serveNATS(t, mod, "mute", func(inv *schemas.Invocation) *schemas.Result { got.Add(1); seen <- inv.ID; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	natstest.Eventually(t, wait, "mute to be invoked", func() bool {
		if got.Load() > 0 {
			return true
		}
		_, _, err := console.SayAndWait(ctx, r.env.Admin, console.Message{Channel: "main", User: "dan", Text: "#mute"}, console.SayOptions{NoWait: true})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return got.Load() > 0
	})
	natstest.Eventually(t, wait, "the silent invocation dead-lettered", func() bool {
		for _, d := range natstest.Decode[schemas.DeadLetter](t, r.env.Admin.JS, schemas.StreamDLQ, "") {
			if d.Subject == schemas.CommandSubject("mute") && d.Failures == 3 && strings.Contains(d.Reason, "no result") {
				return true
			}
		}
		return false
	})
	if n := got.Load(); n < 3 {
		t.Fatalf("invoked %d times, want one per attempt (3)", n)
	}
	// A result after the invocation was given up is refused.
	id := <-seen
	data, _ := json.Marshal(schemas.Result{Version: schemas.Version, InvocationID: id, Replies: []schemas.ReplyText{{Text: "late"}}})
	if err := mod.NC.Publish(schemas.ResultSubject("mute"), data); err != nil {
		t.Fatal(err)
	}
	natstest.Eventually(t, wait, "the late result refused", func() bool { return r.relay.Refused() == 1 })
	if r.relay.Relayed() != 0 {
		t.Fatal("a late result was relayed")
	}
}
