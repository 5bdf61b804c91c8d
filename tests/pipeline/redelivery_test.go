package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// A worker killed after its commit and before its ack produces no second
// effect and no second reply (issue 2). Worker A of a module with writes is
// "killed" by closing its NATS connection, the way a dead process's
// connection goes: nothing it does afterwards reaches NATS, and its
// invocation stays unacknowledged. Worker B, started on a connection of its
// own, gets the invocation again after AckWait.
//
// The kill is placed deterministically, in one of the two windows the
// outbox exists for:
//   - after the commit, before the publish: the handler closes A's
//     connection while it runs; its writes and result still commit (they go
//     to PostgreSQL), and nothing is published or acked;
//   - after the publish, before the ack: a trigger the test puts on the
//     outbox table holds A in MarkSent (which runs after the publish and
//     before the ack) until the test has closed A's connection, then the
//     test cancels that statement, so the outbox row also stays unsent, as
//     it would after a crash.
func TestRedeliveryAfterCrashNoSecondEffect(t *testing.T) {
	t.Run("after commit, before publish", func(t *testing.T) {
		h := newHarness(t)
		tally := newEffectModule(h, "tally", "tally")
		h.tuneWorker = crashTestWorker
		var connA atomic.Pointer[natsx.Conn]
		var killedID atomic.Value
		tally.onCall = func(n int32, inv *schemas.Invocation) {
			if n == 1 {
				killedID.Store(inv.ID)
				connA.Load().NC.Close()
			}
		}
		h.startAll(tally.module())
		a := h.parts["tally"]
		connA.Store(a.conn)
		seen := h.watchConsole("demo")

		// Several commands in flight: the first call kills A; the others are
		// then committed by A and not published, or never reach A.
		var evs []*schemas.Event
		for _, user := range []string{"alice", "bob", "carol"} {
			evs = append(evs, h.post("demo", user, "!tally"))
		}
		eventually(t, "worker A to be killed and its invocation committed", func() bool {
			id, _ := killedID.Load().(string)
			return id != "" && h.count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1`, id) == 1
		})
		if err := a.stop(t); err != nil {
			t.Fatalf("worker A: %v", err)
		}
		killed := killedID.Load().(string)
		// The state a crash leaves: committed, never published, never acked.
		if n := h.count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NULL`, killed); n != 1 {
			t.Fatalf("the killed invocation's outbox row is not committed-and-unsent")
		}
		if n := tally.rows(h, killed); n != 1 {
			t.Fatalf("the killed invocation committed %d rows, want 1", n)
		}
		if n := len(h.replies(schemas.ReplyID(killed, 1))); n != 0 {
			t.Fatalf("worker A published %d replies before dying; the test needs it to die first", n)
		}
		checkUnacked(t, h, killed)
		t.Logf("worker A left %d of %d invocations committed and unsent; it ran the handler %d times",
			h.count(`SELECT count(*) FROM processed_invocations WHERE module = 'tally' AND sent_at IS NULL`), len(evs), tally.calls.Load())

		h.startWorker(tally.module())
		checkOncePerInvocation(t, h, tally, seen, evs)
	})

	t.Run("after publish, before ack", func(t *testing.T) {
		h := newHarness(t)
		tally := newEffectModule(h, "tally", "tally")
		h.tuneWorker = crashTestWorker
		h.startAll(tally.module())
		a := h.parts["tally"]
		hold := holdMarkSent(t, h)
		seen := h.watchConsole("demo")

		ev := h.post("demo", "alice", "!tally")
		inv := schemas.InvocationID(ev.ID, "tally", "cmd:tally")
		pid := hold.waitHeld(t)
		// A is in MarkSent: its reply is out.
		if n := len(h.replies(schemas.ReplyID(inv, 1))); n != 1 {
			t.Fatalf("%d replies while A is held after its publish, want 1", n)
		}
		a.conn.NC.Close()
		hold.cancel(t, pid)
		if err := a.stop(t); err != nil {
			t.Fatalf("worker A: %v", err)
		}
		hold.remove(t)
		if n := h.count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NULL`, inv); n != 1 {
			t.Fatalf("the killed invocation's outbox row is not committed-and-unsent")
		}
		checkUnacked(t, h, inv)

		h.startWorker(tally.module())
		checkOncePerInvocation(t, h, tally, seen, []*schemas.Event{ev})
	})
}

// crashTestWorker gives redelivery a short AckWait and keeps the outbox
// sweeper out of the way, so what republishes is the redelivered invocation.
func crashTestWorker(c *actions.Config) {
	c.AckWait = 2 * time.Second
	c.OutboxSweep = time.Hour
}

// checkUnacked checks that the module's consumer still owes an ack for the
// invocation: it will be delivered again.
func checkUnacked(t *testing.T, h *harness, invocationID string) {
	t.Helper()
	seq := invocationSeq(t, h, invocationID)
	if info := h.consumerInfo(schemas.StreamCommands, "tally"); info.AckFloor.Stream >= seq {
		t.Fatalf("invocation %s (seq %d) was acked (ack floor %d): nothing will redeliver it", invocationID, seq, info.AckFloor.Stream)
	}
}

func invocationSeq(t *testing.T, h *harness, invocationID string) uint64 {
	t.Helper()
	for _, m := range h.messages(schemas.StreamCommands, schemas.CommandSubject("tally")) {
		if m.Header.Get(jetstream.MsgIDHeader) == invocationID {
			return m.Sequence
		}
	}
	t.Fatalf("invocation %s is not in WB_COMMANDS", invocationID)
	return 0
}

// checkOncePerInvocation waits for worker B to finish, then checks that
// every command ran its handler once, wrote once, and was answered once.
func checkOncePerInvocation(t *testing.T, h *harness, tally *effectModule, seen *deliveries, evs []*schemas.Event) {
	t.Helper()
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = schemas.InvocationID(ev.ID, "tally", "cmd:tally")
	}
	eventually(t, "every invocation to be answered and marked sent", func() bool {
		for _, id := range ids {
			if len(h.replies(schemas.ReplyID(id, 1))) == 0 ||
				h.count(`SELECT count(*) FROM processed_invocations WHERE invocation_id = $1 AND sent_at IS NOT NULL`, id) != 1 {
				return false
			}
		}
		return true
	})
	h.settle()
	for _, id := range ids {
		want := schemas.ReplyID(id, 1)
		if n := len(h.replies(want)); n != 1 {
			t.Errorf("invocation %s: WB_REPLIES holds %d replies with id %s, want 1", id, n, want)
		}
		if n := tally.rows(h, id); n != 1 {
			t.Errorf("invocation %s wrote %d rows, want 1", id, n)
		}
		if n := seen.count(want); n != 1 {
			t.Errorf("invocation %s: the console sender delivered its reply %d times, want 1", id, n)
		}
	}
	for _, ev := range evs {
		if n := len(h.repliesToEvent(ev.ID)); n != 1 {
			t.Errorf("event %s has %d replies, want 1", ev.ID, n)
		}
	}
	if n := int(tally.calls.Load()); n != len(ids) {
		t.Errorf("the handler ran %d times for %d invocations", n, len(ids))
	}
	if n := tally.rows(h, ""); n != len(ids) {
		t.Errorf("tally_effects has %d rows, want %d", n, len(ids))
	}
	info := h.consumerInfo(schemas.StreamCommands, "tally")
	if msgs := len(h.messages(schemas.StreamCommands, schemas.CommandSubject("tally"))); info.Delivered.Consumer <= uint64(msgs) {
		t.Errorf("%d deliveries of %d invocations: nothing was redelivered, so the test proved nothing", info.Delivered.Consumer, msgs)
	}
	if dls := h.deadLetters(""); len(dls) != 0 {
		t.Errorf("dead letters: %s", describe(dls...))
	}
}

// markSentHold holds MarkSent (the UPDATE that sets processed_invocations.
// sent_at) on an advisory lock the test owns, through a trigger on the
// test's own database.
type markSentHold struct {
	h    *harness
	mu   sync.Mutex
	conn *pgx.Conn // holds the lock
}

const holdLockKey = 727001

func holdMarkSent(t *testing.T, h *harness) *markSentHold {
	t.Helper()
	h.exec(`CREATE FUNCTION pipeline_hold_mark_sent() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_advisory_xact_lock(727001);
			RETURN NEW;
		END $$`)
	h.exec(`CREATE TRIGGER pipeline_hold_mark_sent BEFORE UPDATE ON processed_invocations FOR EACH ROW
		WHEN (OLD.sent_at IS NULL AND NEW.sent_at IS NOT NULL) EXECUTE FUNCTION pipeline_hold_mark_sent()`)
	ctx, cancel := bg()
	defer cancel()
	conn, err := pgx.Connect(ctx, h.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(holdLockKey)); err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	m := &markSentHold{h: h, conn: conn}
	t.Cleanup(func() { m.release() })
	return m
}

// waitHeld waits until a session waits on the lock, and returns its pid.
func (m *markSentHold) waitHeld(t *testing.T) int {
	t.Helper()
	var pid int
	eventually(t, "worker A to be held in MarkSent", func() bool {
		ctx, cancel := bg()
		defer cancel()
		err := m.h.db.Pool().QueryRow(ctx, `
			SELECT pid FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted AND objid = $1 AND objsubid = 1
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, holdLockKey).Scan(&pid)
		return err == nil
	})
	return pid
}

// cancel cancels the held statement: MarkSent fails, the row stays unsent.
func (m *markSentHold) cancel(t *testing.T, pid int) {
	t.Helper()
	var ok bool
	ctx, cancel := bg()
	defer cancel()
	if err := m.h.db.Pool().QueryRow(ctx, `SELECT pg_cancel_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("unable to cancel the held MarkSent (pid %d): %v", pid, err)
	}
}

// remove drops the trigger and releases the lock.
func (m *markSentHold) remove(t *testing.T) {
	t.Helper()
	m.h.exec(`DROP TRIGGER pipeline_hold_mark_sent ON processed_invocations`)
	m.h.exec(`DROP FUNCTION pipeline_hold_mark_sent()`)
	m.release()
}

func (m *markSentHold) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.conn.Close(ctx)
		m.conn = nil
	}
}
