package collectors_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/waddlebot/waddlebot/collectors"
)

// blockUntilStopped is a task that runs until it is stopped, and reports
// that it was.
func blockUntilStopped(stopped chan<- struct{}) collectors.Task {
	return collectors.Task{Name: "connection", Run: func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	}}
}

func TestRunTogether(t *testing.T) {
	// One task failing stops the others, and its failure is named.
	stopped := make(chan struct{})
	boom := errors.New("boom")
	err := collectors.RunTogether(context.Background(), "demo", blockUntilStopped(stopped),
		collectors.Task{Name: "lookups", Run: func(context.Context) error { return boom }})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "demo: lookups stopped") {
		t.Fatalf("err = %v, want the lookups' failure, named", err)
	}
	<-stopped

	// Shutting down is not a failure, whatever the tasks return then.
	ctx, cancel := context.WithCancel(context.Background())
	stopped = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- collectors.RunTogether(ctx, "demo", blockUntilStopped(stopped)) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("after ctx ended: %v, want nil", err)
	}
}
