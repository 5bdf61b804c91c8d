// Package setup builds the music module and its players from the
// configuration (WADDLEBOT_YOUTUBE_* and WADDLEBOT_SPOTIFY_*), for the
// built-in module list and the portal's Spotify page. It is apart from
// package music because the players import music.
package setup

import (
	"flag"
	"io"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/actions/music/spotify"
	"github.com/waddlebot/waddlebot/actions/music/youtube"
	"github.com/waddlebot/waddlebot/internal/config"
	"github.com/waddlebot/waddlebot/internal/store"
)

// EnvConfig reads the configuration from the environment, for a binary
// whose wiring does not hand it over. A bad value keeps its default: the
// command's configuration check reports it.
func EnvConfig() config.Config {
	fs := flag.NewFlagSet("music", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	loaded, _ := config.NewLoader(fs).Load()
	return loaded.Config
}

// YouTube is the YouTube player of c.
func YouTube(c config.Config) *youtube.Client {
	return &youtube.Client{APIURL: c.YouTubeAPIURL, Key: c.YouTubeAPIKey}
}

// Spotify is the Spotify player of c, keeping tokens in st's secrets.
func Spotify(c config.Config, st *store.Store) *spotify.Client {
	return &spotify.Client{APIURL: c.SpotifyAPIURL, AccountsURL: c.SpotifyAccountsURL, ClientID: c.SpotifyClientID,
		ClientSecret: c.SpotifyClientSecret, Tokens: spotify.StoreTokens{Store: st}}
}

// Module builds the music module from the environment.
func Module(st *store.Store) actions.Module {
	c := EnvConfig()
	return music.New(music.Config{Store: st, YouTube: YouTube(c), Spotify: Spotify(c, st)})
}
