// Package daemon runs a process's parts and shuts them down in a stated
// order: stop intake, drain the router, drain module workers, flush replies;
// the caller then closes NATS and the pool.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/waddlebot/waddlebot/internal/logging"
)

// Stage orders shutdown: lower stages stop first.
type Stage int

// Stages, in shutdown order.
const (
	StageIntake  Stage = iota // HTTP pages, collectors' intake
	StageRouter               // the router
	StageActions              // module workers
	StageSenders              // reply senders
)

func (s Stage) String() string {
	return [...]string{"intake", "router", "actions", "senders"}[s]
}

type part struct {
	name  string
	stage Stage
	run   func(ctx context.Context) error
}

// Daemon is a set of parts.
type Daemon struct {
	log   *slog.Logger
	parts []part
}

// New makes an empty daemon.
func New(log *slog.Logger) *Daemon { return &Daemon{log: log} }

// Add registers a part. run must block until its context ends and return
// only after it has finished its work (drained).
func (d *Daemon) Add(stage Stage, name string, run func(ctx context.Context) error) {
	d.parts = append(d.parts, part{name: name, stage: stage, run: run})
}

// Run starts every part and waits for ctx to end or a part to fail; then it
// stops the parts stage by stage, each stage finishing before the next is
// told to stop, so nothing upstream produces work for a drained part.
func (d *Daemon) Run(ctx context.Context) error {
	stages := map[Stage][]part{}
	for _, p := range d.parts {
		stages[p.stage] = append(stages[p.stage], p)
	}
	order := make([]Stage, 0, len(stages))
	for s := range stages {
		order = append(order, s)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })

	failed := make(chan error, len(d.parts))
	cancels := map[Stage]context.CancelFunc{}
	waits := map[Stage]*sync.WaitGroup{}
	for _, s := range order {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[s] = cancel
		wg := &sync.WaitGroup{}
		waits[s] = wg
		for _, p := range stages[s] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := p.run(sctx)
				if err != nil && sctx.Err() == nil {
					failed <- fmt.Errorf("%s: %w", p.name, err)
				}
			}()
		}
	}

	var cause error
	select {
	case <-ctx.Done():
	case cause = <-failed:
		d.log.Error("daemon: a part failed; shutting down", logging.Err(cause))
	}
	for _, s := range order {
		d.log.Info("daemon: stopping", "stage", s.String())
		cancels[s]()
		waits[s].Wait()
	}
	close(failed)
	var errs []error
	if cause != nil {
		errs = append(errs, cause)
	}
	for err := range failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
