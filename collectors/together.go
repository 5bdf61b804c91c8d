package collectors

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// Task is one long-running piece of a collector's intake.
type Task struct {
	Name string
	Run  func(context.Context) error
}

// RunTogether runs a collector's tasks (its platform connection, its
// wb.api lookups, …) until ctx ends or one fails; a failure stops the
// others, since a replica that cannot serve one part is restarted whole.
// It returns the first failure, named after its task; tasks that end
// because the others were stopped are not failures.
func RunTogether(ctx context.Context, platform string, tasks ...Task) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range tasks {
		g.Go(func() error {
			err := t.Run(gctx)
			if err == nil || gctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%s: %s stopped: %w", platform, t.Name, err)
		})
	}
	return g.Wait()
}
