package setup

import "testing"

func TestFromEnvironment(t *testing.T) {
	t.Setenv("WADDLEBOT_YOUTUBE_API_KEY", "yt-key")
	t.Setenv("WADDLEBOT_YOUTUBE_API_URL", "http://127.0.0.1:1/yt")
	t.Setenv("WADDLEBOT_SPOTIFY_CLIENT_ID", "cid")
	t.Setenv("WADDLEBOT_SPOTIFY_CLIENT_SECRET", "csecret")
	t.Setenv("WADDLEBOT_SPOTIFY_API_URL", "http://127.0.0.1:1/api")
	t.Setenv("WADDLEBOT_SPOTIFY_ACCOUNTS_URL", "http://127.0.0.1:1/accounts")
	c := EnvConfig()
	yt := YouTube(c)
	sp := Spotify(c, nil)
	if yt.Key != "yt-key" || yt.APIURL != "http://127.0.0.1:1/yt" {
		t.Errorf("youtube %+v", yt)
	}
	if !sp.Configured() || sp.ClientSecret != "csecret" || sp.APIURL != "http://127.0.0.1:1/api" || sp.AccountsURL != "http://127.0.0.1:1/accounts" {
		t.Errorf("spotify %+v", sp)
	}
	if m := Module(nil); m.Manifest.Name != "music" || m.Handle == nil {
		t.Errorf("module %+v", m.Manifest)
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("WADDLEBOT_SPOTIFY_CLIENT_ID", "")
	c := EnvConfig()
	if Spotify(c, nil).Configured() || c.YouTubeAPIURL != "https://www.googleapis.com/youtube/v3" || c.SpotifyAccountsURL != "https://accounts.spotify.com" {
		t.Errorf("defaults %+v", c)
	}
}
