package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"github.com/waddlebot/waddlebot/internal/logging"
)

//go:embed page.html
var pageFS embed.FS

// page is the dev chat page: one file with its script and style inline, so
// there is no build step and nothing is fetched from elsewhere.
var page = mustRead(pageFS, "page.html")

func mustRead(fs embed.FS, name string) []byte {
	b, err := fs.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("console: embedded %s missing: %v", name, err))
	}
	return b
}

// maxSayBody bounds a POST /api/say body: the longest text an event may
// carry plus room for the other fields and JSON escaping.
const maxSayBody = 256 << 10

// Handler serves the dev chat page and its API:
//
//	GET  /                         the page
//	POST /api/say                  {channel,user,role,text,id} → 202 {"event_id"}; 400 {"error"}
//	GET  /api/stream?channel=demo  Server-Sent Events: one "reply" event per reply
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.servePage)
	mux.HandleFunc("POST /api/say", c.serveSay)
	mux.HandleFunc("GET /api/stream", c.serveStream)
	return mux
}

func (c *Console) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(page)
}

type sayRequest struct {
	Channel string `json:"channel"`
	User    string `json:"user"`
	Role    string `json:"role"`
	Text    string `json:"text"`
	ID      string `json:"id"`
}

type sayResponse struct {
	EventID string `json:"event_id"`
}

type errorResponse struct {
	Error string `json:"error"`
}

func (c *Console) serveSay(w http.ResponseWriter, r *http.Request) {
	// Only JSON: a page on another site can post text/plain or a form to
	// localhost without asking, but not application/json (that needs a
	// CORS preflight, which this handler never grants).
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, errorResponse{Error: "send JSON with Content-Type: application/json"})
		return
	}
	var req sayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSayBody))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "body is not a JSON object {channel,user,role,text,id}: " + err.Error()})
		return
	}
	ev, err := c.Say(r.Context(), Message{Channel: req.Channel, User: req.User, Role: req.Role, Text: req.Text, ID: req.ID})
	switch {
	case errors.Is(err, ErrInvalidMessage):
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: err.Error()})
		return
	case err != nil:
		c.log.Warn("console: unable to take a message from the page", logging.Err(err))
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, sayResponse{EventID: ev.ID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// defaultChannel is the page's channel when none is named.
const defaultChannel = "demo"

func (c *Console) serveStream(w http.ResponseWriter, r *http.Request) {
	channel := r.URL.Query().Get("channel")
	if channel == "" {
		channel = defaultChannel
	}
	if !nameRe.MatchString(channel) {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("channel %q must be 1 to 32 letters, digits, '_' or '-'", channel)})
		return
	}
	rc := http.NewResponseController(w)
	// The shared server's write timeout would cut a stream that is meant to
	// stay open; not every ResponseWriter supports lifting it.
	_ = rc.SetWriteDeadline(time.Time{})

	replies, cancel := c.Subscribe(channel)
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The first comment tells the client the subscription is in place.
	if _, err := fmt.Fprint(w, "retry: 2000\n: connected\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}

	keepalive := time.NewTicker(c.keepalive)
	defer keepalive.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case reply, ok := <-replies:
			if !ok {
				return
			}
			body, merr := json.Marshal(reply)
			if merr != nil {
				c.log.Error("console: unable to encode a reply for the page", logging.Err(merr))
				continue
			}
			_, err = fmt.Fprintf(w, "event: reply\nid: %s\ndata: %s\n\n", reply.ID, body)
		case <-keepalive.C:
			_, err = fmt.Fprint(w, ": keepalive\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
