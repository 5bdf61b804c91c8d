package music

import (
	"context"
	"errors"
	"time"
)

// Provider names.
const (
	YouTube = "youtube"
	Spotify = "spotify"
)

// Track is one song as a provider describes it.
type Track struct {
	Provider string
	// ID is the provider's id: an 11-character video id, a 22-character
	// Spotify track id.
	ID       string
	URI      string
	Title    string
	Artist   string
	Duration time.Duration
}

// Player is one provider behind the queue. YouTube plays in the
// now-playing overlay, so its Enqueue, Skip and Pause do nothing and
// NowPlaying is nil (the overlay reports a track's end instead); Spotify
// plays on the streamer's own device, which these calls drive.
type Player interface {
	Name() string
	// Search finds the best match for free text.
	Search(ctx context.Context, communityID, query string) (Track, error)
	// Lookup describes the track with id.
	Lookup(ctx context.Context, communityID, id string) (Track, error)
	// Enqueue hands a track accepted into the queue to the player.
	Enqueue(ctx context.Context, communityID string, t Track) error
	// NowPlaying is what the player plays now; nil for nothing or when
	// the player cannot tell.
	NowPlaying(ctx context.Context, communityID string) (*Track, error)
	Skip(ctx context.Context, communityID string) error
	Pause(ctx context.Context, communityID string, paused bool) error
}

// Errors providers return, each with its own chat reply (see Reply).
var (
	ErrNotFound      = errors.New("music: no such track")
	ErrNotEmbeddable = errors.New("music: the video cannot be played outside YouTube")
	ErrQuota         = errors.New("music: the provider's quota is used up")
	ErrNoDevice      = errors.New("music: no active Spotify device")
	ErrPremium       = errors.New("music: Spotify Premium is required")
	ErrUnauthorized  = errors.New("music: the provider refused our credentials")
	ErrNotConnected  = errors.New("music: Spotify is not connected")
	ErrNotConfigured = errors.New("music: the provider is not configured")
	ErrUnavailable   = errors.New("music: the provider is unavailable")
)

// Reply is the chat answer for a provider error, or "" for an error that
// is ours (the invocation is retried instead).
func Reply(err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return "I couldn't find that song."
	case errors.Is(err, ErrNotEmbeddable):
		return "That video can't be played outside YouTube; try another."
	case errors.Is(err, ErrQuota):
		return "Song search is out of quota for today; please try again later."
	case errors.Is(err, ErrNoDevice):
		return "Spotify has no active device: the streamer needs to start playing on Spotify first."
	case errors.Is(err, ErrPremium):
		return "Spotify playback control needs a Spotify Premium account."
	case errors.Is(err, ErrUnauthorized):
		return "Spotify refused our access; the streamer needs to connect Spotify again in the portal."
	case errors.Is(err, ErrNotConnected):
		return "Spotify is not connected; the streamer connects it in the portal."
	case errors.Is(err, ErrNotConfigured):
		return "Song requests are not set up on this server yet."
	case errors.Is(err, ErrUnavailable):
		return "The music service is not answering; please try again in a minute."
	}
	return ""
}
