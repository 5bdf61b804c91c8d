package youtube_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/musictest"
	"github.com/waddlebot/waddlebot/actions/music/youtube"
)

func TestClientAgainstTheFake(t *testing.T) {
	ctx := context.Background()
	fake := musictest.NewYouTube(t, "key",
		musictest.Video{ID: "aaaaaaaaaaa", Title: "Penguin Song", Channel: "Waddle Band", Duration: "PT3M10S"},
		musictest.Video{ID: "lllllllllll", Title: "Live Penguins", Channel: "Zoo", Duration: "P0D"})
	c := &youtube.Client{APIURL: fake.URL, Key: "key"}
	tr, err := c.Search(ctx, "", "penguin song")
	if err != nil || tr.ID != "aaaaaaaaaaa" || tr.Title != "Penguin Song" || tr.Artist != "Waddle Band" ||
		tr.Duration != 3*time.Minute+10*time.Second || tr.Provider != music.YouTube {
		t.Fatalf("search %+v, %v", tr, err)
	}
	for _, c2 := range []struct {
		client *youtube.Client
		do     func(*youtube.Client) error
		want   error
	}{
		{c, func(c *youtube.Client) error { _, err := c.Search(ctx, "", "nothing like it"); return err }, music.ErrNotFound},
		{c, func(c *youtube.Client) error { _, err := c.Lookup(ctx, "", "lllllllllll"); return err }, music.ErrNotEmbeddable},
		{&youtube.Client{APIURL: fake.URL, Key: "wrong"}, func(c *youtube.Client) error { _, err := c.Lookup(ctx, "", "aaaaaaaaaaa"); return err }, music.ErrNotConfigured},
		{&youtube.Client{APIURL: fake.URL}, func(c *youtube.Client) error { _, err := c.Lookup(ctx, "", "aaaaaaaaaaa"); return err }, music.ErrNotConfigured},
	} {
		if err := c2.do(c2.client); !errors.Is(err, c2.want) {
			t.Errorf("got %v, want %v", err, c2.want)
		}
	}
	fake.Fail(http.StatusForbidden, "quotaExceeded")
	if _, err := c.Search(ctx, "", "penguin"); !errors.Is(err, music.ErrQuota) {
		t.Fatalf("quota: %v", err)
	}
	// An unreachable API: the error never shows the key.
	down := &youtube.Client{APIURL: "http://127.0.0.1:1", Key: "sekrit-key"}
	if _, err := down.Search(ctx, "", "x"); !errors.Is(err, music.ErrUnavailable) || strings.Contains(err.Error(), "sekrit-key") {
		t.Fatalf("down: %v", err)
	}
}
