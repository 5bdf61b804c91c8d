// Package youtube is the song-request player for YouTube: search.list and
// videos.list of the YouTube Data API v3 with an API key. Songs play in the
// now-playing browser source (the IFrame player), so the queue calls of
// the Player interface do nothing here.
package youtube

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/actions/music"
)

// DefaultAPIURL is the Data API's root.
const DefaultAPIURL = "https://www.googleapis.com/youtube/v3"

// Client calls the YouTube Data API.
type Client struct {
	APIURL string // DefaultAPIURL when empty
	Key    string
	HTTP   *http.Client // a 10-second client when nil
}

var _ music.Player = (*Client)(nil)

// Name is the provider's name.
func (c *Client) Name() string { return music.YouTube }

func (c *Client) base() string {
	if c.APIURL == "" {
		return DefaultAPIURL
	}
	return strings.TrimRight(c.APIURL, "/")
}

func (c *Client) client() *http.Client {
	if c.HTTP == nil {
		return &http.Client{Timeout: 10 * time.Second}
	}
	return c.HTTP
}

// apiError is the Data API's error body.
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Errors  []struct {
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"error"`
}

func (c *Client) get(ctx context.Context, path string, q url.Values, into any) error {
	if c.Key == "" {
		return music.ErrNotConfigured
	}
	q.Set("key", c.Key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base()+path+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("youtube: unable to build a request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return fmt.Errorf("%w: youtube: %v", music.ErrUnavailable, redact(err.Error(), c.Key))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: youtube: unable to read the answer: %v", music.ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		_ = json.Unmarshal(body, &e)
		reason := ""
		if len(e.Error.Errors) > 0 {
			reason = e.Error.Errors[0].Reason
		}
		switch {
		case resp.StatusCode == http.StatusForbidden && (reason == "quotaExceeded" || reason == "dailyLimitExceeded" || reason == "rateLimitExceeded"):
			return fmt.Errorf("%w: youtube: %s", music.ErrQuota, reason)
		case resp.StatusCode == http.StatusBadRequest && reason == "keyInvalid", resp.StatusCode == http.StatusUnauthorized,
			resp.StatusCode == http.StatusForbidden:
			return fmt.Errorf("%w: youtube: HTTP %d %s", music.ErrNotConfigured, resp.StatusCode, reason)
		case resp.StatusCode == http.StatusTooManyRequests:
			return fmt.Errorf("%w: youtube: HTTP 429", music.ErrQuota)
		case resp.StatusCode >= 500:
			return fmt.Errorf("%w: youtube: HTTP %d", music.ErrUnavailable, resp.StatusCode)
		}
		return fmt.Errorf("youtube: HTTP %d %s: %s", resp.StatusCode, reason, e.Error.Message)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%w: youtube: unable to decode the answer: %v", music.ErrUnavailable, err)
	}
	return nil
}

// redact keeps the API key out of errors that quote the URL.
func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "REDACTED")
}

// Search finds the first video for query and describes it.
func (c *Client) Search(ctx context.Context, _ string, query string) (music.Track, error) {
	var out struct {
		Items []struct {
			ID struct {
				VideoID string `json:"videoId"`
			} `json:"id"`
		} `json:"items"`
	}
	q := url.Values{"part": {"snippet"}, "type": {"video"}, "maxResults": {"5"}, "q": {query},
		"videoEmbeddable": {"true"}, "videoCategoryId": {"10"}}
	if err := c.get(ctx, "/search", q, &out); err != nil {
		return music.Track{}, err
	}
	for _, it := range out.Items {
		if it.ID.VideoID != "" {
			return c.Lookup(ctx, "", it.ID.VideoID)
		}
	}
	return music.Track{}, music.ErrNotFound
}

// Lookup describes one video: title, channel, duration, and whether it
// may be embedded.
func (c *Client) Lookup(ctx context.Context, _ string, id string) (music.Track, error) {
	var out struct {
		Items []struct {
			ID      string `json:"id"`
			Snippet struct {
				Title        string `json:"title"`
				ChannelTitle string `json:"channelTitle"`
			} `json:"snippet"`
			ContentDetails struct {
				Duration string `json:"duration"`
			} `json:"contentDetails"`
			Status struct {
				Embeddable    bool   `json:"embeddable"`
				PrivacyStatus string `json:"privacyStatus"`
			} `json:"status"`
		} `json:"items"`
	}
	q := url.Values{"part": {"snippet,contentDetails,status"}, "id": {id}}
	if err := c.get(ctx, "/videos", q, &out); err != nil {
		return music.Track{}, err
	}
	if len(out.Items) == 0 || out.Items[0].Status.PrivacyStatus == "private" {
		return music.Track{}, music.ErrNotFound
	}
	v := out.Items[0]
	if !v.Status.Embeddable {
		return music.Track{}, music.ErrNotEmbeddable
	}
	d, err := ParseDuration(v.ContentDetails.Duration)
	if err != nil {
		return music.Track{}, fmt.Errorf("%w: youtube: video %s: %v", music.ErrUnavailable, id, err)
	}
	if d == 0 {
		// P0D is a live stream: it never ends, so it would hold the queue.
		return music.Track{}, fmt.Errorf("%w: youtube: %s is a live stream", music.ErrNotEmbeddable, id)
	}
	return music.Track{Provider: music.YouTube, ID: v.ID, URI: "https://www.youtube.com/watch?v=" + v.ID,
		Title: v.Snippet.Title, Artist: v.Snippet.ChannelTitle, Duration: d}, nil
}

// ParseDuration reads the ISO 8601 durations videos.list gives: PT4M13S,
// PT1H2M, P1DT2H, P0D.
func ParseDuration(s string) (time.Duration, error) {
	if !strings.HasPrefix(s, "P") {
		return 0, fmt.Errorf("duration %q does not start with P", s)
	}
	var total time.Duration
	inTime := false
	num := ""
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			num += string(r)
		case r == 'T' && !inTime && num == "":
			inTime = true
		default:
			if num == "" {
				return 0, fmt.Errorf("duration %q is malformed", s)
			}
			n, err := strconv.ParseInt(num, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("duration %q is out of range", s)
			}
			num = ""
			var unit time.Duration
			switch {
			case r == 'W' && !inTime:
				unit = 7 * 24 * time.Hour
			case r == 'D' && !inTime:
				unit = 24 * time.Hour
			case r == 'H' && inTime:
				unit = time.Hour
			case r == 'M' && inTime:
				unit = time.Minute
			case r == 'S' && inTime:
				unit = time.Second
			default:
				return 0, fmt.Errorf("duration %q has unit %q", s, r)
			}
			total += time.Duration(n) * unit
		}
	}
	if num != "" {
		return 0, fmt.Errorf("duration %q ends with a number", s)
	}
	return total, nil
}

// Enqueue does nothing: the overlay plays the queue.
func (c *Client) Enqueue(context.Context, string, music.Track) error { return nil }

// NowPlaying is nil: the overlay reports what it plays.
func (c *Client) NowPlaying(context.Context, string) (*music.Track, error) { return nil, nil }

// Skip does nothing: the queue's next song goes to the overlay.
func (c *Client) Skip(context.Context, string) error { return nil }

// Pause does nothing here: the overlay item carries the pause.
func (c *Client) Pause(context.Context, string, bool) error { return nil }
