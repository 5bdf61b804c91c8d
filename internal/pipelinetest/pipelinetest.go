// Package pipelinetest runs the real pipeline for a module's tests: an
// embedded NATS server, a throw-away database, the router, the modules under
// test (and core), and the console platform, each part on its own
// connection. Tests chat through the console as `waddlebot say` does.
package pipelinetest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/core"
	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/router"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// Wait bounds every wait for something that should happen.
const Wait = 20 * time.Second

// DefaultChannel is the console channel Say uses.
const DefaultChannel = "main"

// Options choose what runs.
type Options struct {
	// Modules are started with one worker each (core always runs too).
	// They are built from the pipeline's store, which exists only once
	// Start runs: hence functions.
	Modules []func(st *store.Store) actions.Module
	// Clock drives the workers' schedulers; nil is the wall clock.
	Clock clock.Clock
	// TuneRouter and TuneWorker adjust the parts' configuration.
	TuneRouter func(*router.Config)
	TuneWorker func(*actions.Config)
	// AllowDeadLetters skips the check, when the test ends, that nothing
	// was dead-lettered and every committed result was published: for
	// tests that dead-letter on purpose.
	AllowDeadLetters bool
}

// Pipeline is one test's running pipeline.
type Pipeline struct {
	t      testing.TB
	Env    *natstest.Env
	Store  *store.Store
	Client *natsx.Conn
	opts   Options
	log    *slog.Logger

	mu      sync.Mutex
	modules map[string]actions.Module
	workers map[string][]*runningPart
}

type runningPart struct {
	ready  func() bool
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *runningPart) stop(t testing.TB) {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(Wait):
		t.Errorf("a part did not stop within %s", Wait)
	}
}

// Start runs the pipeline until the test ends.
func Start(t testing.TB, o Options) *Pipeline {
	t.Helper()
	log := logging.Discard()
	if os.Getenv("WADDLEBOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := &Pipeline{t: t, Env: natstest.Start(t, nil), Store: storetest.New(t), opts: o, log: log,
		modules: map[string]actions.Module{}, workers: map[string][]*runningPart{}}
	p.Client = p.Env.Connect(t)
	defaults := config.Defaults()

	rcfg := router.Config{Conn: p.Env.Connect(t), Store: p.Store, Concurrency: 32, MaxFailures: 3,
		Backoff: []time.Duration{20 * time.Millisecond}, UserRateLimit: defaults.UserRateLimit,
		UserRateWindow: defaults.UserRateWindow, ChannelRateLimit: defaults.ChannelRateLimit,
		ChannelRateWindow: defaults.ChannelRateWindow, CacheTTL: time.Minute, AliasDepth: defaults.AliasDepth, Logger: log}
	if o.TuneRouter != nil {
		o.TuneRouter(&rcfg)
	}
	rt, err := router.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	p.run("router", rt.Run, rt.Ready)

	sconn := p.Env.Connect(t)
	c := console.New(console.Config{Publisher: collectors.NewPublisher(sconn.JS, log), Conn: sconn, Logger: log})
	sender, err := collectors.NewSender(collectors.SenderConfig{Platform: c, Conn: sconn, Budget: 0,
		Concurrency: 16, MaxFailures: 3, Backoff: []time.Duration{20 * time.Millisecond}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p.run("console sender", sender.Run, sender.Ready)

	builders := append([]func(*store.Store) actions.Module{
		func(st *store.Store) actions.Module { return core.New(core.Config{Catalogue: st, Version: "test"}) },
	}, o.Modules...)
	for _, b := range builders {
		m := b(p.Store)
		p.modules[m.Manifest.Name] = m
		p.StartWorker(m.Manifest.Name)
	}
	if !o.AllowDeadLetters {
		// Registered last, so it runs first, while the parts still run.
		t.Cleanup(p.checkClean)
	}
	return p
}

// checkClean fails the test if normal use dead-lettered anything or left a
// committed result unpublished: both are invisible in replies.
func (p *Pipeline) checkClean() {
	if p.t.Failed() {
		return
	}
	p.Settle()
	if dls := natstest.Decode[schemas.DeadLetter](p.t, p.Client.JS, schemas.StreamDLQ, ""); len(dls) != 0 {
		p.t.Errorf("pipelinetest: %d dead letters, the first: %s on %s: %s", len(dls), dls[0].Stream, dls[0].Subject, dls[0].Reason)
	}
	natstest.Eventually(p.t, Wait, "every committed result marked sent", func() bool {
		return p.Count(`SELECT count(*) FROM processed_invocations WHERE sent_at IS NULL`) == 0
	})
}

func (p *Pipeline) run(name string, run func(context.Context) error, ready func() bool) *runningPart {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningPart{ready: ready, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := run(ctx); err != nil && ctx.Err() == nil {
			p.t.Errorf("%s stopped: %v", name, err)
		}
	}()
	p.t.Cleanup(func() { r.stop(p.t) })
	natstest.Eventually(p.t, Wait, name+" to be ready", ready)
	return r
}

// StartWorker starts one more worker replica of a module.
func (p *Pipeline) StartWorker(module string) {
	p.t.Helper()
	m, ok := p.modules[module]
	if !ok {
		p.t.Fatalf("pipelinetest: no module %q", module)
	}
	cfg := actions.Config{Module: m, Conn: p.Env.Connect(p.t), Store: p.Store, Concurrency: 16, MaxFailures: 3,
		Backoff: []time.Duration{20 * time.Millisecond}, HeartbeatEvery: time.Second, Clock: p.opts.Clock,
		SchedulePoll: 50 * time.Millisecond, Logger: p.log}
	if p.opts.TuneWorker != nil {
		p.opts.TuneWorker(&cfg)
	}
	w, err := actions.NewWorker(cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	r := p.run("worker "+module, w.Run, w.Ready)
	p.mu.Lock()
	p.workers[module] = append(p.workers[module], r)
	p.mu.Unlock()
}

// StopWorkers stops every worker of a module.
func (p *Pipeline) StopWorkers(module string) {
	p.t.Helper()
	p.mu.Lock()
	ws := p.workers[module]
	p.workers[module] = nil
	p.mu.Unlock()
	for _, w := range ws {
		w.stop(p.t)
	}
}

// Chat is one message typed on the console.
type Chat struct {
	Channel string // default DefaultChannel
	User    string
	Role    string // "", member, subscriber, vip, moderator, broadcaster
	Text    string
}

// Say sends chat and returns the text of every reply part, in order. A
// message that gets no reply fails the test; use Silent for those.
func (p *Pipeline) Say(user, role, text string) []string {
	p.t.Helper()
	return p.SayChat(Chat{User: user, Role: role, Text: text})
}

// SayText is Say with the reply parts joined by new lines.
func (p *Pipeline) SayText(user, role, text string) string {
	p.t.Helper()
	return strings.Join(p.Say(user, role, text), "\n")
}

// SayChat is Say with every field.
func (p *Pipeline) SayChat(c Chat) []string {
	p.t.Helper()
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	_, replies, err := console.SayAndWait(ctx, p.Client, console.Message{Channel: c.Channel, User: c.User, Role: c.Role, Text: c.Text},
		console.SayOptions{Wait: 10 * time.Second, Quiet: 150 * time.Millisecond})
	if err != nil {
		p.t.Fatalf("%s says %q: %v", c.User, c.Text, err)
	}
	out := make([]string, 0, len(replies))
	for _, r := range replies {
		out = append(out, r.Text)
	}
	return out
}

// Silent sends chat that must get no reply (a command refused by the
// router, plain chat) and checks, once the pipeline has caught up, that
// none came.
func (p *Pipeline) Silent(user, role, text string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	ev, _, err := console.SayAndWait(ctx, p.Client, console.Message{Channel: DefaultChannel, User: user, Role: role, Text: text},
		console.SayOptions{NoWait: true})
	if err != nil {
		p.t.Fatal(err)
	}
	p.Settle()
	for _, r := range natstest.Decode[schemas.Reply](p.t, p.Client.JS, schemas.StreamReplies, "") {
		if r.EventID == ev.ID {
			p.t.Fatalf("%q got a reply: %q", text, r.Text)
		}
	}
}

// Settle waits until the router and every module's consumer have caught up.
func (p *Pipeline) Settle() {
	p.t.Helper()
	natstest.Eventually(p.t, Wait, "the pipeline to catch up", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if ok, err := streams.CaughtUp(ctx, p.Client.JS, schemas.StreamEvents, streams.ConsumerRouter); err != nil || !ok {
			return false
		}
		for name := range p.modules {
			if ok, err := streams.CaughtUp(ctx, p.Client.JS, schemas.StreamCommands, name); err != nil || !ok {
				return false
			}
		}
		return true
	})
}

// Community is the community of a console channel (it must have seen a command).
func (p *Pipeline) Community(channel string) schemas.Community {
	p.t.Helper()
	c, err := p.Store.ResolveChannel(context.Background(), store.Channel{Platform: schemas.PlatformConsole, ChannelID: channel, Name: channel})
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// Count runs a count query on the test database.
func (p *Pipeline) Count(query string, args ...any) int {
	p.t.Helper()
	var n int
	if err := p.Store.Pool().QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		p.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// ErrNoSuchReply is returned by ReplyTo when nothing answered.
var ErrNoSuchReply = errors.New("pipelinetest: no reply")

// Must fails the test on err.
func (p *Pipeline) Must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(fmt.Sprint(err))
	}
}

// GiveLabel gives a console user of the default channel a label and tells
// the routers, as the labels module does.
func (p *Pipeline) GiveLabel(login, label string) {
	ctx := context.Background()
	c := p.Community(DefaultChannel)
	p.Must(p.Store.InTx(ctx, func(tx pgx.Tx) error {
		return p.Store.AddLabel(ctx, tx, c.ID, schemas.PlatformConsole, login, label, "test", 5)
	}))
	p.announce(c.ID)
}

// SetTimeZone changes the default channel's community's time zone and
// tells the routers.
func (p *Pipeline) SetTimeZone(zone string) {
	c := p.Community(DefaultChannel)
	c.TimeZone = zone
	p.Must(p.Store.UpdateCommunity(context.Background(), "test", c))
	p.announce(c.ID)
}

func (p *Pipeline) announce(communityID string) {
	p.Must(p.Client.NC.Publish(schemas.ControlCommunity(communityID), nil))
	p.Must(p.Client.NC.Flush())
}
