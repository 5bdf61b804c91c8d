package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
)

// part is one single-part process and the address of its HTTP server.
type part struct {
	*proc
	addr string
}

func (s *sandbox) startPart(name string, env []string, args ...string) part {
	s.t.Helper()
	addr := freeAddr(s.t)
	return part{proc: s.start(name, env, append(args, "--http-addr", addr)...), addr: addr}
}

// metric reads one metric (all series summed) from a part's /metrics.
func (p part) metric(t *testing.T, name string) float64 {
	t.Helper()
	code, body, err := httpGet("http://" + p.addr + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s: GET /metrics: %d %v", p.name, code, err)
	}
	v, _ := metricSum(body, name)
	return v
}

// pingN runs `waddlebot say "!ping"` n times, a few at once, and fails on
// any answer but "pong".
func pingN(t *testing.T, s *sandbox, env []string, n int) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		bad  []string
		sema = make(chan struct{}, 4)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sema <- struct{}{}
			defer func() { <-sema }()
			r := s.run(30*time.Second, env, "say", "--user", fmt.Sprintf("viewer%d", i%5), "!ping")
			if r.code != 0 || r.stdout != "pong\n" {
				mu.Lock()
				bad = append(bad, r.String())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d pings did not answer exactly \"pong\"; first:\n%s", len(bad), n, bad[0])
	}
}

// TestSeparateProcessesAndReplicas runs every part as its own process over
// one NATS server, with two replicas of the router and of the core module
// sharing their durable consumers.
func TestSeparateProcessesAndReplicas(t *testing.T) {
	t.Parallel()
	nenv := natstest.Start(t, nil)
	s := newSandbox(t)
	env := []string{"WADDLEBOT_NATS_URL=" + nenv.Server.URL(), "WADDLEBOT_DATABASE_URL=" + storetest.URL(t)}

	if r := s.run(60*time.Second, env, "migrate"); r.code != 0 {
		t.Fatalf("migrate: want exit 0\n%s", r)
	}
	if r := s.run(30*time.Second, env, "streams", "verify"); r.code != 0 {
		t.Fatalf("streams verify: want exit 0\n%s", r)
	}
	// The console trusts claimed roles: outside dev it needs an explicit yes.
	r := s.run(30*time.Second, env, "collector", "console", "--http-addr", freeAddr(t))
	if r.code != 2 || !strings.Contains(r.stderr, "WADDLEBOT_CONSOLE_ENABLED") {
		t.Fatalf("collector console without WADDLEBOT_CONSOLE_ENABLED: want exit 2 and a message naming it\n%s", r)
	}

	routers := []part{s.startPart("router 1", env, "router"), s.startPart("router 2", env, "router")}
	cores := []part{s.startPart("action core 1", env, "action", "core"), s.startPart("action core 2", env, "action", "core")}
	console := s.startPart("collector console", append(env, "WADDLEBOT_CONSOLE_ENABLED=true"), "collector", "console")
	all := append(append(append([]part{}, routers...), cores...), console)
	for _, p := range all {
		p.waitReady(t, p.addr, 30*time.Second)
	}

	const pings = 20
	pingN(t, s, env[:1], pings) // say needs only the NATS URL

	// Both durable consumers delivered every message and hold nothing back.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, c := range []struct{ stream, consumer string }{{"WB_EVENTS", "router"}, {"WB_COMMANDS", "core"}} {
		eventually(t, 10*time.Second, "consumer "+c.consumer+" on "+c.stream+" is caught up", func() (bool, string) {
			cons, err := nenv.Conn.JS.Consumer(ctx, c.stream, c.consumer)
			if err != nil {
				return false, err.Error()
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			detail := fmt.Sprintf("delivered %d, ack floor %d, pending %d, ack pending %d, redelivered %d",
				info.Delivered.Consumer, info.AckFloor.Consumer, info.NumPending, info.NumAckPending, info.NumRedelivered)
			return info.Delivered.Consumer >= pings && info.NumPending == 0 && info.NumAckPending == 0 &&
				info.AckFloor.Consumer == info.Delivered.Consumer, detail
		})
	}
	var routed, handled float64
	var split []string
	for _, p := range routers {
		v := p.metric(t, "waddlebot_events_routed_total")
		routed += v
		split = append(split, fmt.Sprintf("%s %.0f", p.name, v))
	}
	for _, p := range cores {
		v := p.metric(t, "waddlebot_invocations_handled_total")
		handled += v
		split = append(split, fmt.Sprintf("%s %.0f", p.name, v))
	}
	t.Logf("work split: %s", strings.Join(split, ", "))
	if routed < pings || handled < pings {
		t.Errorf("the replicas routed %.0f events and handled %.0f invocations, want at least %d each", routed, handled, pings)
	}

	// Stop one replica of each: the other keeps serving the shared consumer.
	for _, p := range []part{routers[0], cores[0]} {
		if code, graceful := p.stop(stopGrace); !graceful || code != 0 {
			t.Fatalf("%s: SIGTERM → exit %d (graceful %v), want a clean exit 0\n%s", p.name, code, graceful, p.output())
		}
	}
	routedBefore := routers[1].metric(t, "waddlebot_events_routed_total")
	handledBefore := cores[1].metric(t, "waddlebot_invocations_handled_total")
	pingN(t, s, env[:1], 3)
	if got := routers[1].metric(t, "waddlebot_events_routed_total") - routedBefore; got < 3 {
		t.Errorf("router 2 routed %.0f of the 3 pings sent after router 1 stopped", got)
	}
	if got := cores[1].metric(t, "waddlebot_invocations_handled_total") - handledBefore; got < 3 {
		t.Errorf("action core 2 handled %.0f of the 3 pings sent after action core 1 stopped", got)
	}
}

// TestPartRefusesMissingStreams: a part verifies the streams and never
// creates them; without them it says what to run.
func TestPartRefusesMissingStreams(t *testing.T) {
	t.Parallel()
	bare, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bare.Shutdown)
	s := newSandbox(t)
	env := []string{"WADDLEBOT_NATS_URL=" + bare.URL(), "WADDLEBOT_DATABASE_URL=" + storetest.URL(t)}
	r := s.run(30*time.Second, env, "router", "--http-addr", freeAddr(t))
	if r.code == 0 || r.timedOut {
		t.Fatalf("router on a server without streams: want a non-zero exit\n%s", r)
	}
	if !strings.Contains(r.stderr, "waddlebot streams apply") {
		t.Errorf("router on a server without streams: want stderr to say to run `waddlebot streams apply`\n%s", r)
	}
	if r := s.run(30*time.Second, env, "streams", "verify"); r.code == 0 || !strings.Contains(r.stderr, "waddlebot streams apply") {
		t.Errorf("streams verify on a server without streams: want non-zero and the same advice\n%s", r)
	}
	// And the parts did not create anything on the way.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := natstest.Connect(t, bare)
	names := conn.JS.StreamNames(ctx)
	var found []string
	for n := range names.Name() {
		found = append(found, n)
	}
	if len(found) != 0 {
		t.Errorf("streams on the bare server after the refusals: %v", found)
	}
}
