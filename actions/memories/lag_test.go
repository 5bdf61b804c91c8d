package memories_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/memories"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/internal/pipelinetest"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// BenchmarkReminderLag measures the scheduler's lag on the wall clock: due
// time → the reminder's reply stored in WB_REPLIES (the stream's own
// timestamp). Each iteration schedules a batch of reminders due one second
// later, as another replica's insert would (the worker sees them on its
// poll, not through its own handler's wake-up), and waits for every reply.
//
//	go test -run '^$' -bench ReminderLag -benchtime 5x ./actions/memories/
//
// It reports the median, 95th percentile and largest lag over all
// reminders of all iterations, in milliseconds.
func BenchmarkReminderLag(b *testing.B) {
	for _, c := range []struct {
		batch, replicas int
		poll            time.Duration
	}{
		{1, 1, time.Second},   // production poll, one reminder at a time
		{100, 1, time.Second}, // a burst due at the same instant
		{100, 3, time.Second}, // the burst shared by three replicas
	} {
		b.Run(fmt.Sprintf("batch=%d/replicas=%d/poll=%s", c.batch, c.replicas, c.poll), func(b *testing.B) {
			benchLag(b, c.batch, c.replicas, c.poll)
		})
	}
}

func benchLag(b *testing.B, batch, replicas int, poll time.Duration) {
	p := pipelinetest.Start(b, pipelinetest.Options{
		Modules: []func(*store.Store) actions.Module{func(st *store.Store) actions.Module {
			return memories.New(memories.Config{Store: st})
		}},
		TuneWorker: func(c *actions.Config) { c.SchedulePoll = poll },
	})
	for range replicas - 1 {
		p.StartWorker(memories.Name)
	}
	ctx := context.Background()
	community := p.Community(pipelinetest.DefaultChannel)
	target := schemas.Target{Platform: schemas.PlatformConsole, ChannelID: pipelinetest.DefaultChannel, ChannelName: pipelinetest.DefaultChannel}

	var lags []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// PostgreSQL keeps microseconds, and the firing id is made from the stored due time.
		due := time.Now().Add(time.Second).UTC().Truncate(time.Microsecond)
		waiting := map[string]bool{} // firing ids
		p.Must(p.Store.InTx(ctx, func(tx pgx.Tx) error {
			for n := range batch {
				payload, _ := json.Marshal(map[string]any{"number": i*batch + n + 1, "text": "lag", "who": "bench",
					"user_id": "bench", "where": "here", "time_zone": "UTC"})
				job := store.Job{ID: uuid.NewString(), Module: memories.Name, CommunityID: community.ID, Kind: memories.JobKind,
					DueAt: due, Target: target, Payload: payload, CreatedBy: "console:bench"}
				waiting[schemas.FiringID(job.ID, due)] = true
				if err := p.Store.ScheduleJob(ctx, tx, job); err != nil {
					return err
				}
			}
			return nil
		}))
		// The stream's timestamps are the measure, so polling it adds nothing.
		deadline := time.Now().Add(pipelinetest.Wait)
		for len(waiting) > 0 {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d reminders never fired", len(waiting), batch)
			}
			time.Sleep(20 * time.Millisecond)
			for _, m := range natstest.Messages(b, p.Client.JS, schemas.StreamReplies, "") {
				var r schemas.Reply
				if err := json.Unmarshal(m.Data, &r); err != nil {
					b.Fatal(err)
				}
				if waiting[r.InvocationID] {
					delete(waiting, r.InvocationID)
					lags = append(lags, m.Time.Sub(due))
				}
			}
		}
	}
	b.StopTimer()
	slices.Sort(lags)
	at := func(q float64) float64 {
		return float64(lags[min(len(lags)-1, int(q*float64(len(lags))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(at(1), "max-ms")
	b.ReportMetric(float64(len(lags)), "reminders")
}
