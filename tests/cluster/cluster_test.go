package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// Losing the node that leads WB_EVENTS in the middle of a burst loses no
// event and answers none twice: the collector's retried publishes die in
// the (replicated) duplicate window, and the parts reconnect to the other
// nodes and carry on from their durable consumers.
func TestStreamLeaderKilledMidLoad(t *testing.T) {
	for _, stream := range []string{schemas.StreamEvents, schemas.StreamCommands} {
		t.Run(stream, func(t *testing.T) {
			start := time.Now()
			h := newHarness(t)
			h.startAll()
			killed := -1
			l := h.postPings("leader", 300, 12, func() {
				killed = h.cluster.WaitStreamLeader(stream)
				h.cluster.Kill(killed)
			})
			newLeader := h.cluster.WaitStreamLeader(stream)
			if newLeader == killed {
				t.Fatalf("node %d still leads %s after being killed", killed, stream)
			}
			t.Logf("killed node %d, the leader of %s; node %d took over", killed, stream, newLeader)
			h.checkExactlyOnce(l)
			if stream == schemas.StreamEvents {
				// The node comes back and catches up; the pipeline keeps
				// working. Once is enough: a restart costs seconds.
				h.cluster.Restart(killed)
				h.checkExactlyOnce(h.postPings("after", 20, 4, nil))
			}
			t.Logf("took %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

// A router replica and a worker replica that crash mid-load (connection
// dropped, context ended, whatever they held unacknowledged) lose nothing:
// the second replica of each takes over what they held once AckWait passes,
// and the ids the contract fixes keep every event at one reply.
func TestReplicasKilledMidLoad(t *testing.T) {
	start := time.Now()
	h := newHarness(t)
	h.startAll()
	secondRouter, _ := h.startRouter()
	secondWorker := h.startWorker(h.modules[0])
	l := h.postPings("replica", 300, 12, func() {
		secondRouter.kill(t)
		secondWorker.kill(t)
	})
	h.checkExactlyOnce(l)
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}

// PostgreSQL cut off for a few seconds, under load, on the cluster: the
// router (making communities for channels it has never seen) and a module
// with writes pause rather than dead-letter, and once the database is back
// every command is answered once and written once.
func TestPostgresCutOffMidLoad(t *testing.T) {
	start := time.Now()
	h := newHarness(t)
	direct := openStore(t, h.dbURL, h.log)
	if _, err := direct.Pool().Exec(t.Context(), `CREATE TABLE tally_effects (invocation_id uuid NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	proxy, proxied := storetest.StartProxy(t, h.dbURL)
	h.st = openStore(t, proxied, h.log)
	h.startAll(tallyModule())

	var tallies []*schemas.Event
	l := h.postPings("pg", 200, 20, func() {
		proxy.Down()
		// Commands with writes, during the outage.
		for i := range 20 {
			tallies = append(tallies, h.post(fmt.Sprintf("pg-ch%d", i%4), fmt.Sprintf("pg-tally%d", i), "!tally"))
		}
		// Long against back-off × failure limit (50 ms × 3): counted as
		// handler failures, the outage would have dead-lettered by now.
		time.Sleep(3 * time.Second)
		proxy.Up(t)
	})
	h.checkExactlyOnce(l)
	byEvent, _ := h.replyCounts()
	for _, ev := range tallies {
		if n := byEvent[ev.ID]; n != 1 {
			t.Errorf("!tally %s: %d replies, want 1", ev.ID, n)
		}
		inv := schemas.InvocationID(ev.ID, "tally", schemas.RouteCommand+"tally")
		if n := h.count(direct, `SELECT count(*) FROM tally_effects WHERE invocation_id = $1`, inv); n != 1 {
			t.Errorf("invocation %s wrote %d rows, want 1", inv, n)
		}
	}
	if n := h.count(direct, `SELECT count(*) FROM processed_invocations WHERE sent_at IS NULL`); n != 0 {
		t.Errorf("%d committed results never marked sent", n)
	}
	t.Logf("took %s", time.Since(start).Round(time.Millisecond))
}
