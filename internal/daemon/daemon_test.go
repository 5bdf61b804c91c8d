package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
)

// TestStopsStagesInOrder checks that each stage finishes before the next is
// told to stop: the router must drain before the workers stop, and so on.
func TestStopsStagesInOrder(t *testing.T) {
	d := New(logging.Discard())
	var mu sync.Mutex
	var events []string
	note := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
	part := func(name string, drain time.Duration) func(context.Context) error {
		return func(ctx context.Context) error {
			<-ctx.Done()
			note(name + " stopping")
			time.Sleep(drain)
			note(name + " stopped")
			return nil
		}
	}
	d.Add(StageSenders, "sender", part("sender", 0))
	d.Add(StageActions, "core", part("core", 20*time.Millisecond))
	d.Add(StageRouter, "router", part("router", 30*time.Millisecond))
	d.Add(StageIntake, "http", part("http", 0))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"http stopping", "http stopped", "router stopping", "router stopped",
		"core stopping", "core stopped", "sender stopping", "sender stopped"}
	if len(events) != len(want) {
		t.Fatalf("events = %v", events)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Fatalf("events = %v, want %v", events, want)
		}
	}
}

func TestPartFailureStopsAll(t *testing.T) {
	d := New(logging.Discard())
	boom := errors.New("boom")
	stopped := make(chan struct{})
	d.Add(StageRouter, "router", func(ctx context.Context) error { return boom })
	d.Add(StageActions, "core", func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil })
	err := d.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("other parts were not stopped")
	}
}
