package collectors_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/streams"
)

const leaseTTL = 1500 * time.Millisecond

func leaseEnv(t *testing.T) *natstest.Env {
	return natstest.Start(t, func(c *streams.Config) { c.LeaseTTL = leaseTTL })
}

func leasesFor(t *testing.T, env *natstest.Env, holder string) *coord.Leases {
	t.Helper()
	kv, err := env.Conn.JS.KeyValue(context.Background(), streams.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	l, err := coord.NewLeases(context.Background(), kv, holder, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// connection stands for a platform connection: it records how many holders
// run it at once.
type connection struct {
	active, most atomic.Int32
	runs         atomic.Int32
}

func (c *connection) run(ctx context.Context, started chan<- string, who string) error {
	n := c.active.Add(1)
	defer c.active.Add(-1)
	for {
		m := c.most.Load()
		if n <= m || c.most.CompareAndSwap(m, n) {
			break
		}
	}
	c.runs.Add(1)
	started <- who
	<-ctx.Done()
	return nil
}

func TestHoldLeaseRunsOneHolderAtATime(t *testing.T) {
	env := leaseEnv(t)
	var conn connection
	started := make(chan string, 4)
	const key = "twitch.eventsub.1"

	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	var wg sync.WaitGroup
	hold := func(ctx context.Context, holder string) {
		defer wg.Done()
		leases := leasesFor(t, env, holder)
		if err := collectors.HoldLease(ctx, leases, key, func(ctx context.Context) error {
			return conn.run(ctx, started, holder)
		}); err != nil {
			t.Errorf("%s: HoldLease = %v", holder, err)
		}
	}
	wg.Add(1)
	go hold(ctxA, "replica-a")
	if who := <-started; who != "replica-a" {
		t.Fatalf("%s started first", who)
	}
	wg.Add(1)
	go hold(ctxB, "replica-b")
	select {
	case who := <-started:
		t.Fatalf("%s started while replica-a holds the lease", who)
	case <-time.After(2 * leaseTTL):
	}
	stopA() // replica-a shuts down and releases
	select {
	case who := <-started:
		if who != "replica-b" {
			t.Fatalf("%s started, want replica-b", who)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("replica-b never took over the released lease")
	}
	stopB()
	wg.Wait()
	if most := conn.most.Load(); most != 1 {
		t.Fatalf("%d holders ran the connection at once", most)
	}
}

func TestHoldLeaseStopsAndRetakesALostLease(t *testing.T) {
	env := leaseEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const key = "discord.shard.0"
	kv, err := env.Conn.JS.KeyValue(ctx, streams.BucketLeases)
	if err != nil {
		t.Fatal(err)
	}
	runs := make(chan context.Context, 4)
	done := make(chan error, 1)
	go func() {
		done <- collectors.HoldLease(ctx, leasesFor(t, env, "replica-a"), key, func(runCtx context.Context) error {
			runs <- runCtx
			<-runCtx.Done()
			return errors.New("connection closed")
		})
	}()
	first := <-runs
	// Another replica overwrites the lease (as after a partition): the
	// holder must notice at its next renewal and drop the connection.
	if _, err := kv.Put(ctx, key, []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(5 * leaseTTL):
		t.Fatal("run kept going after the lease was lost")
	}
	select {
	case <-runs:
		t.Fatal("ran again while the intruder holds the lease")
	case <-time.After(leaseTTL / 2):
	}
	if err := kv.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	select {
	case second := <-runs:
		if second.Err() != nil {
			t.Fatal("second run started with a dead context")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("HoldLease did not take the lease again")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("HoldLease after cancel = %v, want nil", err)
	}
}

func TestHoldLeaseReturnsRunErrorAndReleases(t *testing.T) {
	env := leaseEnv(t)
	ctx := context.Background()
	const key = "slack.socket.T1"
	boom := errors.New("invalid token")
	err := collectors.HoldLease(ctx, leasesFor(t, env, "replica-a"), key, func(context.Context) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("HoldLease = %v, want %v", err, boom)
	}
	lease, err := leasesFor(t, env, "replica-b").TryAcquire(ctx, key)
	if err != nil {
		t.Fatalf("lease not released after run returned: %v", err)
	}
	lease.Release()
}
