package collectors

import (
	"context"
	"log/slog"

	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
)

// HoldLease runs a long-lived platform connection (an EventSub WebSocket, a
// Discord shard, a Slack socket) only while this replica holds the lease on
// key, so that at most one replica holds each connection.
//
// It waits for the lease, then runs run with a context that is cancelled as
// soon as the lease is lost (renewal failed long enough, or another replica
// took it): run must then drop the connection at once. The lease is
// released when run returns. If the lease was lost while ctx is still alive,
// HoldLease waits for it again and runs run anew.
//
// It returns nil when ctx ends, and run's own result when run returned while
// the lease was still held.
func HoldLease(ctx context.Context, leases *coord.Leases, key string, run func(ctx context.Context) error) error {
	for {
		lease, err := leases.Acquire(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		runCtx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lease.Lost:
				cancel()
			case <-runCtx.Done():
			}
		}()
		runErr := run(runCtx)
		lost := isClosed(lease.Lost)
		cancel()
		lease.Release()
		switch {
		case ctx.Err() != nil:
			// Shutting down: whatever run said was about being stopped.
			return nil
		case lost:
			slog.Warn("collectors: connection lease lost; waiting to take it again", "key", key, logging.Err(runErr))
			continue
		}
		return runErr
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
