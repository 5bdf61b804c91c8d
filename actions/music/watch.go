package music

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// WatchEvery is how often a community's Spotify player is read while
// requests wait, so the now-playing card follows songs that end there
// without anyone typing !np. YouTube needs no watching: its overlay
// reports each end.
const WatchEvery = 15 * time.Second

const watchKind = "spotify-watch"

// watch starts following the community's Spotify player, unless a job
// already does. Called with the queue lock held.
func (m *module) watch(ctx context.Context, tx pgx.Tx, inv *schemas.Invocation) error {
	var watching bool
	if err := tx.QueryRow(ctx, `SELECT watching FROM music_state WHERE community_id = $1`, inv.Community.ID).Scan(&watching); err != nil {
		return fmt.Errorf("music: unable to read the watch state: %w", err)
	}
	if watching {
		return nil
	}
	if _, err := actions.Schedule(ctx, m.st, tx, inv, 1, store.Job{Kind: watchKind, DueAt: time.Now().Add(WatchEvery)}); err != nil {
		return fmt.Errorf("music: unable to schedule the Spotify watch: %w", err)
	}
	return setWatching(ctx, tx, inv.Community.ID, true)
}

func setWatching(ctx context.Context, tx pgx.Tx, communityID string, on bool) error {
	if _, err := tx.Exec(ctx, `UPDATE music_state SET watching = $2 WHERE community_id = $1`, communityID, on); err != nil {
		return fmt.Errorf("music: unable to record the watch state: %w", err)
	}
	return nil
}

// fire reads the Spotify player and moves the queue and the card along;
// it stops when no request is left, or when the connection is gone.
func (m *module) fire(ctx context.Context, job *store.Job, _ bool, tx pgx.Tx) (*schemas.Result, *time.Time, error) {
	if job.Kind != watchKind {
		return nil, nil, fmt.Errorf("%w: music has no job kind %q", schemas.ErrInvalid, job.Kind)
	}
	cid := job.CommunityID
	paused, err := lock(ctx, tx, cid)
	if err != nil {
		return nil, nil, err
	}
	stop := func() (*schemas.Result, *time.Time, error) { return nil, nil, setWatching(ctx, tx, cid, false) }
	if _, ok := m.players[Spotify]; !ok {
		return stop()
	}
	np, _, err := m.sync(ctx, tx, cid, Settings{Provider: Spotify}, paused)
	switch {
	case errors.Is(err, ErrNotConnected), errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotConfigured):
		return stop()
	case err != nil && Reply(err) != "":
		// No device for now, a rate limit, an outage: look again later.
		np = nil
	case err != nil:
		return nil, nil, err
	}
	all, err := open(ctx, tx, cid)
	if err != nil {
		return nil, nil, err
	}
	var res *schemas.Result
	if np != nil {
		res = &schemas.Result{Version: schemas.Version, Module: Name, Overlays: []schemas.OverlayItem{np.Item()}}
	}
	if len(all) == 0 {
		if err := setWatching(ctx, tx, cid, false); err != nil {
			return nil, nil, err
		}
		return res, nil, nil
	}
	next := time.Now().Add(WatchEvery)
	return res, &next, nil
}
