package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions/actionstest"
	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/internal/store/storetest"
	"github.com/waddlebot/waddlebot/schemas"
)

// reminderModule schedules a job 10 minutes ahead on "!later <text>" and,
// when it fires, replies with the text (and "late" when it is).
func reminderModule(st *store.Store, fires *atomic.Int32, failFirst *atomic.Int32) Module {
	m := manifest("later", true, "later")
	return Module{Manifest: m,
		Handle: func(ctx context.Context, inv *schemas.Invocation, tx pgx.Tx) (*schemas.Result, error) {
			payload, _ := json.Marshal(map[string]string{"text": inv.ArgText})
			job, err := Schedule(ctx, st, tx, inv, 1, store.Job{Kind: "reminder",
				DueAt: inv.Event.ReceivedAt.Add(10 * time.Minute), Payload: payload})
			if err != nil {
				return nil, err
			}
			return reply("scheduled " + job.ID), nil
		},
		Fire: func(ctx context.Context, job *store.Job, late bool, tx pgx.Tx) (*schemas.Result, *time.Time, error) {
			if failFirst != nil && failFirst.Add(-1) >= 0 {
				return nil, nil, errors.New("flaky firing")
			}
			fires.Add(1)
			var p struct{ Text string }
			_ = json.Unmarshal(job.Payload, &p)
			text := "reminder: " + p.Text
			if late {
				text += " (late)"
			}
			return reply(text), nil, nil
		}}
}

type schedRig struct {
	env   *natstest.Env
	st    *store.Store
	clock *clock.Fake
	inv   *schemas.Invocation
}

func newSchedRig(t *testing.T) *schedRig {
	env := natstest.Start(t, nil)
	st := storetest.New(t)
	c, err := st.CreateCommunity(context.Background(), "test", store.NewCommunity{Name: "c"})
	if err != nil {
		t.Fatal(err)
	}
	inv := actionstest.Invocation("later", "later", "stretch")
	inv.Community.ID = c.ID
	start := time.Date(2026, 11, 28, 18, 0, 0, 0, time.UTC)
	inv.Event.ReceivedAt = start
	return &schedRig{env: env, st: st, clock: clock.NewFake(start), inv: inv}
}

func (r *schedRig) worker(t *testing.T, m Module) *running {
	cfg := testConfig(m, r.env.Connect(t), r.st)
	cfg.Clock = r.clock
	cfg.SchedulePoll = 20 * time.Millisecond
	return start(t, newWorker(t, cfg))
}

func (r *schedRig) firingReplies(t *testing.T, jobID string, due time.Time) []actionstest.Reply {
	return actionstest.RepliesTo(t, r.env.Conn.JS, schemas.FiringID(jobID, due))
}

// TestJobFiresOnceWithThreeReplicas is the issue's: three workers poll the
// same jobs; the reminder fires exactly once, on time.
func TestJobFiresOnceWithThreeReplicas(t *testing.T) {
	r := newSchedRig(t)
	var fires atomic.Int32
	m := reminderModule(r.st, &fires, nil)
	for range 3 {
		r.worker(t, m)
	}
	actionstest.Publish(t, r.env.Conn.JS, r.inv)
	jobID := schemas.JobID(r.inv.ID, 1)
	due := r.inv.Event.ReceivedAt.Add(10 * time.Minute)
	actionstest.Eventually(t, waitLong, "the job scheduled", func() bool {
		return countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1`, jobID) == 1
	})
	r.clock.Advance(9 * time.Minute)
	time.Sleep(200 * time.Millisecond)
	if n := fires.Load(); n != 0 {
		t.Fatalf("fired %d times a minute early", n)
	}
	r.clock.Advance(time.Minute)
	actionstest.Eventually(t, waitLong, "the reminder", func() bool { return len(r.firingReplies(t, jobID, due)) == 1 })
	time.Sleep(300 * time.Millisecond) // time for a second firing, were there one
	got := r.firingReplies(t, jobID, due)
	if fires.Load() != 1 || len(got) != 1 || got[0].Text != "reminder: stretch" || got[0].Target.ChannelID != actionstest.Channel {
		t.Fatalf("fires %d, replies %+v", fires.Load(), got)
	}
	if got[0].ID != schemas.ReplyID(schemas.FiringID(jobID, due), 1) {
		t.Fatalf("reply id %s", got[0].ID)
	}
	if countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1 AND state = 'fired' AND NOT late`, jobID) != 1 {
		t.Fatal("job not marked fired on time")
	}
}

// TestJobDueWhileStoppedFiresLateOnStart: the workers were down when the
// reminder came due; the first worker to start fires it, marked late.
func TestJobDueWhileStoppedFiresLateOnStart(t *testing.T) {
	r := newSchedRig(t)
	var fires atomic.Int32
	m := reminderModule(r.st, &fires, nil)
	w := r.worker(t, m)
	actionstest.Publish(t, r.env.Conn.JS, r.inv)
	jobID := schemas.JobID(r.inv.ID, 1)
	actionstest.Eventually(t, waitLong, "the job scheduled", func() bool {
		return countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1`, jobID) == 1
	})
	if err := w.stop(t); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(2 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	if fires.Load() != 0 {
		t.Fatal("fired with no worker running")
	}
	r.worker(t, m)
	due := r.inv.Event.ReceivedAt.Add(10 * time.Minute)
	actionstest.Eventually(t, waitLong, "the late reminder", func() bool { return len(r.firingReplies(t, jobID, due)) == 1 })
	if got := r.firingReplies(t, jobID, due); got[0].Text != "reminder: stretch (late)" {
		t.Fatalf("reply %q", got[0].Text)
	}
	if countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1 AND state = 'fired' AND late`, jobID) != 1 {
		t.Fatal("job not marked late")
	}
}

// TestFailedFiringRetriesThenGivesUp: a failing firing waits its back-off
// (on the worker's clock) and is given up after JobAttempts.
func TestFailedFiringRetriesThenGivesUp(t *testing.T) {
	r := newSchedRig(t)
	var fires, fail atomic.Int32
	fail.Store(2)
	m := reminderModule(r.st, &fires, &fail)
	r.worker(t, m)
	actionstest.Publish(t, r.env.Conn.JS, r.inv)
	jobID := schemas.JobID(r.inv.ID, 1)
	actionstest.Eventually(t, waitLong, "the job scheduled", func() bool {
		return countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1`, jobID) == 1
	})
	r.clock.Advance(10 * time.Minute)
	actionstest.Eventually(t, waitLong, "a failed attempt", func() bool {
		return countRows(t, r.st, `SELECT attempts FROM scheduled_jobs WHERE id = $1`, jobID) == 1
	})
	time.Sleep(100 * time.Millisecond)
	if countRows(t, r.st, `SELECT attempts FROM scheduled_jobs WHERE id = $1`, jobID) != 1 {
		t.Fatal("retried before its back-off")
	}
	for i := 0; i < 4 && fires.Load() == 0; i++ {
		r.clock.Advance(5 * time.Second)
		time.Sleep(100 * time.Millisecond)
	}
	due := r.inv.Event.ReceivedAt.Add(10 * time.Minute)
	actionstest.Eventually(t, waitLong, "the reminder after two failures", func() bool { return len(r.firingReplies(t, jobID, due)) == 1 })

	// A job that always fails is given up.
	fail.Store(1 << 20)
	other := actionstest.Invocation("later", "later", "never")
	other.Community.ID, other.Event.ReceivedAt = r.inv.Community.ID, r.clock.Now()
	actionstest.Publish(t, r.env.Conn.JS, other)
	otherID := schemas.JobID(other.ID, 1)
	actionstest.Eventually(t, waitLong, "the second job scheduled", func() bool {
		return countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1`, otherID) == 1
	})
	for i := 0; i < 40; i++ {
		r.clock.Advance(5 * time.Minute)
		time.Sleep(30 * time.Millisecond)
		if countRows(t, r.st, `SELECT count(*) FROM scheduled_jobs WHERE id = $1 AND state = 'failed'`, otherID) == 1 {
			break
		}
	}
	if n := countRows(t, r.st, `SELECT attempts FROM scheduled_jobs WHERE id = $1 AND state = 'failed'`, otherID); n != 5 {
		t.Fatalf("gave up after %d attempts, want 5", n)
	}
	if fires.Load() != 1 {
		t.Fatal(fmt.Sprint("fires: ", fires.Load()))
	}
}
