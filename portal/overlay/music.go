package overlay

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/actions/music"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/schemas"
)

// The now-playing page plays YouTube requests with the IFrame player
// (static/music.js), so its page may load YouTube's player script and
// frame; every other page keeps the strict policy.
const nowPlayingCSP = "default-src 'none'; script-src 'self' https://www.youtube.com https://s.ytimg.com; " +
	"frame-src https://www.youtube.com https://www.youtube-nocookie.com; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data: https://i.ytimg.com; base-uri 'none'; form-action 'none'"

// trackEnded serves the now-playing page's report that a song finished:
// POST /overlay/music/ended?t=<nowplaying token> with {"entry": <id>}. The
// queue advances and the next song goes to the page as an ordinary item,
// so every open copy of the page (and one that reconnects) follows.
func (s *Server) trackEnded(w http.ResponseWriter, r *http.Request) {
	o, ok := s.authorize(w, r, schemas.OverlayNowPlaying)
	if !ok {
		return
	}
	var body struct {
		Entry int64 `json:"entry"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1024))
	if err := dec.Decode(&body); err != nil || body.Entry <= 0 {
		http.Error(w, `the body is {"entry": <the id of the song that ended>}`, http.StatusBadRequest)
		return
	}
	np, err := music.TrackEnded(r.Context(), s.st, o.CommunityID, body.Entry)
	if err != nil {
		s.log.Error("overlay: unable to advance the song queue", logging.KeyCommunity, o.CommunityID, logging.Err(err))
		http.Error(w, "Please try again in a minute.", http.StatusServiceUnavailable)
		return
	}
	if np != nil {
		item := np.Item()
		// One id per ended entry: a retried report publishes once.
		item.ID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("waddlebot:music-ended:"+o.CommunityID+":"+itoa(body.Entry))).String()
		item.Version, item.CommunityID, item.CreatedAt = schemas.Version, o.CommunityID, time.Now().UTC()
		data, err := json.Marshal(&item)
		if err == nil {
			_, err = s.js.Publish(r.Context(), schemas.OverlaySubject(o.CommunityID, schemas.OverlayNowPlaying), data, jetstream.WithMsgID(item.ID))
		}
		if err != nil {
			// The queue has advanced: the next !np or request shows it.
			s.log.Warn("overlay: unable to publish the next song", logging.KeyCommunity, o.CommunityID, logging.Err(err))
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
