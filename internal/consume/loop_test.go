package consume_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/consume"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

type rig struct {
	env  *natstest.Env
	cons jetstream.Consumer
	fail jetstream.KeyValue
}

func newRig(t *testing.T, ackWait time.Duration) *rig {
	t.Helper()
	env := natstest.Start(t, nil)
	ctx := context.Background()
	cons, err := streams.EnsureConsumer(ctx, env.Conn.JS, schemas.StreamCommands, streams.ModuleConsumer("test", ackWait))
	if err != nil {
		t.Fatal(err)
	}
	fail, err := env.Conn.JS.KeyValue(ctx, streams.BucketFailures)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, cons: cons, fail: fail}
}

func (r *rig) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := r.env.Conn.JS.Publish(context.Background(), "wb.cmd.test", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) run(t *testing.T, h consume.Handler, cfg consume.Config) (stop func()) {
	t.Helper()
	cfg.Stream, cfg.Consumer = schemas.StreamCommands, "test"
	cfg.Logger = logging.Discard()
	if cfg.Backoff == nil {
		cfg.Backoff = []time.Duration{10 * time.Millisecond}
	}
	loop := consume.New(r.env.Conn.JS, r.cons, r.fail, h, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = loop.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func (r *rig) deadLetters(t *testing.T) []schemas.DeadLetter {
	t.Helper()
	return natstest.Decode[schemas.DeadLetter](t, r.env.Conn.JS, schemas.StreamDLQ, "")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, 20*time.Second, what, cond)
}

func ackPending(t *testing.T, c jetstream.Consumer) (uint64, int) {
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending, info.NumAckPending
}

func TestHandlesEveryMessageOnce(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var seen sync.Map
	var count atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		if _, dup := seen.LoadOrStore(string(msg.Data()), true); dup {
			t.Errorf("message %s handled twice", msg.Data())
		}
		count.Add(1)
		return nil
	}, consume.Config{Concurrency: 16})
	r.publish(t, 500)
	eventually(t, "500 messages", func() bool { return count.Load() == 500 })
	eventually(t, "all acked", func() bool { p, a := ackPending(t, r.cons); return p == 0 && a == 0 })
}

func TestPullsNoMoreThanFreeCapacity(t *testing.T) {
	r := newRig(t, 30*time.Second)
	release := make(chan struct{})
	var running, peak atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return nil
	}, consume.Config{Concurrency: 3})
	r.publish(t, 20)
	eventually(t, "3 running", func() bool { return running.Load() == 3 })
	time.Sleep(200 * time.Millisecond)
	if _, ack := ackPending(t, r.cons); ack > 3 {
		t.Fatalf("%d messages delivered while only 3 slots exist", ack)
	}
	close(release)
	eventually(t, "all done", func() bool { p, a := ackPending(t, r.cons); return p == 0 && a == 0 })
	if peak.Load() > 3 {
		t.Fatalf("peak concurrency %d > 3", peak.Load())
	}
}

func TestFailingMessageIsDeadLetteredAndOthersFlow(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var attempts, ok atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		if string(msg.Data()) == "3" {
			attempts.Add(1)
			return errors.New("boom")
		}
		ok.Add(1)
		return nil
	}, consume.Config{Concurrency: 4, MaxFailures: 3})
	r.publish(t, 10)
	eventually(t, "a dead letter", func() bool { return len(r.deadLetters(t)) == 1 })
	eventually(t, "others handled", func() bool { return ok.Load() == 9 })
	dl := r.deadLetters(t)[0]
	if dl.Failures != 3 || string(dl.Body) != "3" || dl.Subject != "wb.cmd.test" || dl.Consumer != "test" {
		t.Fatalf("dead letter = %+v", dl)
	}
	if attempts.Load() != 3 {
		t.Fatalf("handler ran %d times, want 3", attempts.Load())
	}
	eventually(t, "nothing pending", func() bool { p, a := ackPending(t, r.cons); return p == 0 && a == 0 })
}

func TestPermanentAndInvalidDeadLetterAtOnce(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var attempts atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		attempts.Add(1)
		if string(msg.Data()) == "0" {
			return consume.Permanent(errors.New("undecodable"))
		}
		return fmt.Errorf("router: %w", schemas.ErrInvalid)
	}, consume.Config{MaxFailures: 5})
	r.publish(t, 2)
	eventually(t, "two dead letters", func() bool { return len(r.deadLetters(t)) == 2 })
	time.Sleep(100 * time.Millisecond)
	if attempts.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", attempts.Load())
	}
	for _, dl := range r.deadLetters(t) {
		if dl.Failures != 0 || dl.Reason == "" {
			t.Fatalf("dead letter = %+v", dl)
		}
	}
}

func TestDeferralsDoNotCount(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var attempts atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		if attempts.Add(1) <= 6 {
			return consume.Defer(5*time.Millisecond, "budget")
		}
		return nil
	}, consume.Config{MaxFailures: 2})
	r.publish(t, 1)
	eventually(t, "acked after deferrals", func() bool { p, a := ackPending(t, r.cons); return attempts.Load() == 7 && p == 0 && a == 0 })
	if n := len(r.deadLetters(t)); n != 0 {
		t.Fatalf("%d dead letters after deferrals", n)
	}
}

func TestPausesWhileDependencyIsDown(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var down atomic.Bool
	down.Store(true)
	var handled, probes atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		if down.Load() {
			return consume.Unavailable(errors.New("connection refused"))
		}
		handled.Add(1)
		return nil
	}, consume.Config{MaxFailures: 1, ProbeEvery: 10 * time.Millisecond, Probe: func(ctx context.Context) error {
		probes.Add(1)
		if down.Load() {
			return errors.New("still down")
		}
		return nil
	}})
	r.publish(t, 20)
	eventually(t, "probing", func() bool { return probes.Load() >= 3 })
	time.Sleep(300 * time.Millisecond)
	down.Store(false)
	eventually(t, "all handled after recovery", func() bool { return handled.Load() == 20 })
	if n := len(r.deadLetters(t)); n != 0 {
		t.Fatalf("%d dead letters while the dependency was down", n)
	}
}

func TestInProgressKeepsSlowHandlerFromRedelivery(t *testing.T) {
	r := newRig(t, time.Second)
	var attempts atomic.Int32
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		attempts.Add(1)
		time.Sleep(2500 * time.Millisecond)
		return nil
	}, consume.Config{})
	r.publish(t, 1)
	eventually(t, "acked", func() bool { p, a := ackPending(t, r.cons); return attempts.Load() >= 1 && p == 0 && a == 0 })
	if attempts.Load() != 1 {
		t.Fatalf("slow handler ran %d times", attempts.Load())
	}
}

func TestOrderKeyKeepsOrder(t *testing.T) {
	r := newRig(t, 30*time.Second)
	var mu sync.Mutex
	var got []int
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		n, _ := strconv.Atoi(string(msg.Data()))
		time.Sleep(time.Duration(10-n%10) * time.Millisecond)
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
		return nil
	}, consume.Config{Concurrency: 16, OrderKey: func(jetstream.Msg) string { return "one" }})
	r.publish(t, 30)
	eventually(t, "30 handled", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 30 })
	for i, n := range got {
		if n != i {
			t.Fatalf("order broken: %v", got)
		}
	}
}

func TestDrainFinishesRunningHandlers(t *testing.T) {
	r := newRig(t, 30*time.Second)
	started := make(chan struct{})
	var finished atomic.Bool
	stop := r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		finished.Store(true)
		return nil
	}, consume.Config{})
	r.publish(t, 1)
	<-started
	stop()
	if !finished.Load() {
		t.Fatal("Run returned before the running handler finished")
	}
	// The ack was sent before Run returned; the server takes it a moment later.
	eventually(t, "the drained message acked", func() bool { p, a := ackPending(t, r.cons); return p == 0 && a == 0 })
}

func TestPanicCountsAsFailure(t *testing.T) {
	r := newRig(t, 30*time.Second)
	r.run(t, func(ctx context.Context, msg jetstream.Msg) error {
		panic("nil map")
	}, consume.Config{MaxFailures: 2})
	r.publish(t, 1)
	eventually(t, "a dead letter", func() bool { return len(r.deadLetters(t)) == 1 })
}
