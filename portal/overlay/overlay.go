// Package overlay serves browser sources (OBS overlays): one page per
// community and source behind a secret token, and the WebSocket that
// brings the page its items from WB_OVERLAY. A page that reconnects sends
// the last stream sequence it showed and gets what came after it, so an
// alert is never shown twice and one missed while away is shown once.
package overlay

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/clock"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/ops"
	"github.com/waddlebot/waddlebot/internal/store"
	"github.com/waddlebot/waddlebot/schemas"
)

// Base is where browser sources live: Base + "/<source>?t=<token>".
const Base = "/overlay"

// DefaultPingInterval is how often a socket is pinged, and its token
// checked again, so a rotated-out token stops working on open sockets too.
const DefaultPingInterval = 20 * time.Second

// csp lets the page run only its own script file: a chat message that
// somehow became markup could still run nothing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

// Config configures the overlay server.
type Config struct {
	Store *store.Store
	Conn  *natsx.Conn
	// PingInterval is DefaultPingInterval when zero.
	PingInterval time.Duration
	Clock        clock.Clock // default the real one
	Logger       *slog.Logger
}

// Server serves the overlay pages and sockets.
type Server struct {
	cfg  Config
	st   *store.Store
	js   jetstream.JetStream
	hub  *hub
	page *template.Template
	mux  *http.ServeMux
	log  *slog.Logger
}

//go:embed templates/page.html
var pageHTML string

//go:embed static
var staticFS embed.FS

// New checks cfg and builds the server; Run must run for sockets to get
// items.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Conn == nil || cfg.Conn.JS == nil {
		return nil, errors.New("overlay: needs a Store and a NATS connection")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	log := cfg.Logger.With(logging.KeyPart, "overlay")
	page, err := template.New("page").Parse(pageHTML)
	if err != nil {
		return nil, fmt.Errorf("overlay: unable to parse the page: %w", err)
	}
	s := &Server{cfg: cfg, st: cfg.Store, js: cfg.Conn.JS, hub: newHub(cfg.Conn.JS, log), page: page, log: log}
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET "+Base+"/static/", http.StripPrefix(Base+"/static/", http.FileServerFS(static)))
	m.HandleFunc("GET "+Base+"/ws", s.socket)
	m.HandleFunc("POST "+Base+"/music/ended", s.trackEnded)
	m.HandleFunc("GET "+Base+"/{source}", s.pageHandler)
	m.HandleFunc(Base+"/", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	s.mux = m
	return s, nil
}

// Mount adds the overlay routes to srv, beside the portal.
func (s *Server) Mount(srv *ops.Server) { srv.Handle(Base+"/", s) }

// Run fans WB_OVERLAY out to the sockets until ctx ends, then closes them
// (their pages reconnect to whichever server is up).
func (s *Server) Run(ctx context.Context) error { return s.hub.run(ctx) }

// Ready reports whether sockets get items.
func (s *Server) Ready() bool {
	select {
	case <-s.hub.ready:
		return true
	default:
		return false
	}
}

// Listeners is how many sockets are open and listening.
func (s *Server) Listeners() int { return s.hub.count() }

// ServeHTTP serves every overlay route with the headers every answer gets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	// The token is in the URL: never hand it to anyone else.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// schemaSource is the source name items carry for a URL's source.
func schemaSource(source string) string {
	if source == "alerts" {
		return schemas.OverlayAlert
	}
	return source
}

// authorize checks the token of r: 401 without one, 403 for one that is
// wrong, rotated out, or for another source (want "" accepts any).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, want string) (store.OverlaySource, bool) {
	token := r.URL.Query().Get("t")
	if token == "" {
		http.Error(w, "This browser source URL has no token: copy it again from the portal.", http.StatusUnauthorized)
		return store.OverlaySource{}, false
	}
	o, err := s.st.OverlayByToken(r.Context(), token, s.cfg.Clock.Now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && want != "" && o.Source != want) {
		http.Error(w, "This browser source URL is not valid (perhaps its token was rotated): copy it again from the portal.", http.StatusForbidden)
		return store.OverlaySource{}, false
	}
	if err != nil {
		s.log.Error("overlay: unable to check a token", logging.Err(err))
		http.Error(w, "Please try again in a minute.", http.StatusServiceUnavailable)
		return store.OverlaySource{}, false
	}
	return o, true
}

type pageData struct {
	Source string
	Look   store.OverlayLook
}

func (s *Server) pageHandler(w http.ResponseWriter, r *http.Request) {
	source := r.PathValue("source")
	if !store.ValidOverlaySource(source) {
		http.NotFound(w, r)
		return
	}
	o, ok := s.authorize(w, r, source)
	if !ok {
		return
	}
	if o.Source == schemas.OverlayNowPlaying {
		w.Header().Set("Content-Security-Policy", nowPlayingCSP)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.page.Execute(w, pageData{Source: o.Source, Look: o.Look}); err != nil {
		s.log.Warn("overlay: unable to render the page", logging.Err(err))
	}
}

// hello is the first frame of a socket: the sequence the page has now seen
// up to, and how to draw itself.
type hello struct {
	Type   string            `json:"type"`
	Seq    uint64            `json:"seq"`
	Source string            `json:"source"`
	Look   store.OverlayLook `json:"look"`
}

func (s *Server) socket(w http.ResponseWriter, r *http.Request) {
	o, ok := s.authorize(w, r, "")
	if !ok {
		return
	}
	var after uint64
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			http.Error(w, "after is the last sequence shown, a whole number", http.StatusBadRequest)
			return
		}
		after = n
	}
	select {
	case <-s.hub.ready:
	case <-r.Context().Done():
		return
	case <-time.After(10 * time.Second):
		http.Error(w, "Overlays are starting; please retry.", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		s.log.Info("overlay: WebSocket handshake failed", logging.Err(err))
		return
	}
	defer c.CloseNow()
	// Pages send nothing; reading in the background answers pings and
	// notices when the page goes.
	ctx := c.CloseRead(r.Context())
	subject := schemas.OverlaySubject(o.CommunityID, schemaSource(o.Source))
	// Listen before looking back, so nothing falls between the two; what
	// comes both ways is dropped by sequence.
	l := s.hub.add(subject)
	defer s.hub.remove(l)
	last, err := s.catchUp(ctx, c, subject, after, o)
	if err != nil {
		s.log.Info("overlay: socket ended while catching up", logging.KeyCommunity, o.CommunityID, logging.Err(err))
		return
	}
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.gone:
			c.Close(websocket.StatusTryAgainLater, "resume from your last sequence")
			return
		case f := <-l.ch:
			if f.seq <= last {
				continue
			}
			if err := write(ctx, c, f.data); err != nil {
				return
			}
			last = f.seq
		case <-ping.C:
			if err := s.keepAlive(ctx, c, r.URL.Query().Get("t")); err != nil {
				return
			}
		}
	}
}

// catchUp sends the hello and what the page missed after after (none for
// a page that has shown nothing yet), returning the last sequence sent.
func (s *Server) catchUp(ctx context.Context, c *websocket.Conn, subject string, after uint64, o store.OverlaySource) (uint64, error) {
	stream, err := s.js.Stream(ctx, schemas.StreamOverlay)
	if err != nil {
		return 0, fmt.Errorf("overlay: unable to open the overlay stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("overlay: unable to read the overlay stream: %w", err)
	}
	// A sequence past the stream's end is from a stream since recreated:
	// the page starts afresh rather than wait for numbers to catch up.
	if after == 0 || after > info.State.LastSeq {
		after = info.State.LastSeq
		// The ticker and the now-playing card show a state, not events: a
		// page opened now shows the latest one (while the stream keeps it).
		if o.Source == schemas.OverlayTicker || o.Source == schemas.OverlayNowPlaying {
			msg, err := stream.GetLastMsgForSubject(ctx, subject)
			switch {
			case err == nil:
				after = msg.Sequence - 1
			case !errors.Is(err, jetstream.ErrMsgNotFound):
				return 0, fmt.Errorf("overlay: unable to read the latest %s: %w", o.Source, err)
			}
		}
	}
	b, _ := json.Marshal(hello{Type: "hello", Seq: after, Source: o.Source, Look: o.Look})
	if err := write(ctx, c, b); err != nil {
		return 0, err
	}
	last := after
	// WB_OVERLAY keeps 20 items a subject: the loop is short.
	for {
		msg, err := stream.GetMsg(ctx, last+1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return last, nil
		}
		if err != nil {
			return 0, fmt.Errorf("overlay: unable to replay overlays: %w", err)
		}
		if err := write(ctx, c, itemFrame(msg.Sequence, msg.Data)); err != nil {
			return 0, err
		}
		last = msg.Sequence
	}
}

var pingFrame = []byte(`{"type":"ping"}`)

// keepAlive pings the page (a WebSocket ping, answered by the browser, and
// a frame its watchdog sees) and checks its token still opens the source.
func (s *Server) keepAlive(ctx context.Context, c *websocket.Conn, token string) error {
	_, err := s.st.OverlayByToken(ctx, token, s.cfg.Clock.Now())
	if errors.Is(err, store.ErrNotFound) {
		c.Close(websocket.StatusPolicyViolation, "token rotated out")
		return fmt.Errorf("overlay: token rotated out")
	}
	// A database hiccup is no reason to blank a live overlay.
	if err != nil {
		s.log.Warn("overlay: unable to check a token again", logging.Err(err))
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.PingInterval)
	defer cancel()
	if err := c.Ping(pctx); err != nil {
		return fmt.Errorf("overlay: page did not answer a ping: %w", err)
	}
	if err := write(ctx, c, pingFrame); err != nil {
		return err
	}
	return nil
}

func write(ctx context.Context, c *websocket.Conn, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, b)
}
