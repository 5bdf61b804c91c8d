package music

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/internal/store"
)

// Entry is one song in a community's queue.
type Entry struct {
	ID            int64
	Provider      string
	TrackID       string
	URI           string
	Title         string
	Artist        string
	Duration      time.Duration
	Requester     string
	RequesterName string
	State         string
}

// Track is the entry's track.
func (e Entry) Track() Track {
	return Track{Provider: e.Provider, ID: e.TrackID, URI: e.URI, Title: e.Title, Artist: e.Artist, Duration: e.Duration}
}

// lock takes the community's queue lock for the rest of tx and reports
// whether playback is paused.
func lock(ctx context.Context, tx pgx.Tx, communityID string) (paused bool, err error) {
	if _, err := tx.Exec(ctx, `INSERT INTO music_state (community_id) VALUES ($1) ON CONFLICT DO NOTHING`, communityID); err != nil {
		return false, fmt.Errorf("music: unable to create the queue state: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT paused FROM music_state WHERE community_id = $1 FOR UPDATE`, communityID).Scan(&paused); err != nil {
		return false, fmt.Errorf("music: unable to lock the queue: %w", err)
	}
	return paused, nil
}

func setPaused(ctx context.Context, tx pgx.Tx, communityID string, paused bool) error {
	if _, err := tx.Exec(ctx, `UPDATE music_state SET paused = $2, updated_at = now() WHERE community_id = $1`, communityID, paused); err != nil {
		return fmt.Errorf("music: unable to pause the queue: %w", err)
	}
	return nil
}

// open lists the playing entry (first, if any) and the queued ones in order.
func open(ctx context.Context, q store.Querier, communityID string) ([]Entry, error) {
	rows, err := q.Query(ctx, `
		SELECT id, provider, track_id, uri, title, artist, duration_ms, requester, requester_name, state
		FROM music_queue WHERE community_id = $1 AND state IN ('queued', 'playing')
		ORDER BY state = 'playing' DESC, id`, communityID)
	if err != nil {
		return nil, fmt.Errorf("music: unable to read the queue: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ms int64
		if err := rows.Scan(&e.ID, &e.Provider, &e.TrackID, &e.URI, &e.Title, &e.Artist, &ms, &e.Requester, &e.RequesterName, &e.State); err != nil {
			return nil, fmt.Errorf("music: unable to read the queue: %w", err)
		}
		e.Duration = time.Duration(ms) * time.Millisecond
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("music: unable to read the queue: %w", err)
	}
	return out, nil
}

// split separates the playing entry from those waiting.
func split(all []Entry) (playing *Entry, waiting []Entry) {
	if len(all) > 0 && all[0].State == "playing" {
		return &all[0], all[1:]
	}
	return nil, all
}

func insert(ctx context.Context, tx pgx.Tx, communityID string, t Track, requester, name string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO music_queue (community_id, provider, track_id, uri, title, artist, duration_ms, requester, requester_name)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		communityID, t.Provider, t.ID, t.URI, actions.Clip(t.Title, 200), actions.Clip(t.Artist, 200), t.Duration.Milliseconds(), requester, actions.Clip(name, 100)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("music: unable to queue a song: %w", err)
	}
	return id, nil
}

// finish ends an entry as played, skipped or removed.
func finish(ctx context.Context, tx pgx.Tx, id int64, state string) error {
	if _, err := tx.Exec(ctx, `UPDATE music_queue SET state = $2, ended_at = now() WHERE id = $1 AND state IN ('queued', 'playing')`, id, state); err != nil {
		return fmt.Errorf("music: unable to end entry %d: %w", id, err)
	}
	return nil
}

func start(ctx context.Context, tx pgx.Tx, id int64) error {
	if _, err := tx.Exec(ctx, `UPDATE music_queue SET state = 'playing', started_at = now() WHERE id = $1`, id); err != nil {
		return fmt.Errorf("music: unable to start entry %d: %w", id, err)
	}
	return nil
}

// advance ends the playing entry (if any) as state and starts the next
// waiting one, returning it (nil when the queue is empty). Call with the
// lock held.
func advance(ctx context.Context, tx pgx.Tx, communityID, state string) (*Entry, error) {
	all, err := open(ctx, tx, communityID)
	if err != nil {
		return nil, err
	}
	playing, waiting := split(all)
	if playing != nil {
		if err := finish(ctx, tx, playing.ID, state); err != nil {
			return nil, err
		}
	}
	if len(waiting) == 0 {
		return nil, nil
	}
	next := waiting[0]
	if err := start(ctx, tx, next.ID); err != nil {
		return nil, err
	}
	next.State = "playing"
	return &next, nil
}

// TrackEnded is the now-playing overlay's report that entry finished
// playing: it is marked played and the next song starts. The item returned
// tells the overlay what to play next; nil when entry was not the song
// playing (a second report of the same end, or one from a page that fell
// behind), so a duplicate report never skips a song.
func TrackEnded(ctx context.Context, st *store.Store, communityID string, entry int64) (*NowPlaying, error) {
	var np *NowPlaying
	err := st.InTx(ctx, func(tx pgx.Tx) error {
		paused, err := lock(ctx, tx, communityID)
		if err != nil {
			return err
		}
		all, err := open(ctx, tx, communityID)
		if err != nil {
			return err
		}
		playing, _ := split(all)
		if playing == nil || playing.ID != entry {
			return nil
		}
		next, err := advance(ctx, tx, communityID, "played")
		if err != nil {
			return err
		}
		np = nowPlaying(next, paused)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return np, nil
}

// prune removes finished entries older than before.
func prune(ctx context.Context, st *store.Store, before time.Time) error {
	return st.InTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM music_queue WHERE ended_at IS NOT NULL AND ended_at < $1`, before)
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("music: unable to prune the queue history: %w", err)
		}
		return err
	})
}
