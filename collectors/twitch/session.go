package twitch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/collectors/twitch/eventsub"
	"github.com/waddlebot/waddlebot/internal/coord"
	"github.com/waddlebot/waddlebot/internal/logging"
	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// Twitch's limits on EventSub WebSockets.
const (
	// maxSubscriptionsPerSocket is how many enabled subscriptions one
	// connection may hold.
	maxSubscriptionsPerSocket = 300
	// maxSocketsPerUser is how many connections one user's token may have
	// open per client id: ours are one per broadcaster, plus the new one
	// during a session_reconnect.
	maxSocketsPerUser = 3
)

// Timings of the WebSocket sessions.
const (
	// resyncEvery is how often the connected broadcasters are read again
	// when no ControlSubject notice came.
	resyncEvery = time.Minute
	// welcomeTimeout bounds the wait for session_welcome after a dial.
	welcomeTimeout = 10 * time.Second
	// retiredDrain is how long an old socket is still read after the new
	// one of a session_reconnect said welcome, for the messages Twitch sent
	// it before moving the session; Twitch closes it (4004) meanwhile.
	retiredDrain = 5 * time.Second
	// backoffFirst and backoffMost bound the wait between reconnects; a
	// session that lived stableAfter starts over at backoffFirst.
	backoffFirst = 500 * time.Millisecond
	backoffMost  = time.Minute
	stableAfter  = time.Minute
	// deliverDrain is how long notifications already read are still
	// offered to the Intake after the broadcaster's lease ended.
	deliverDrain = 10 * time.Second
)

// EventSub WebSocket close codes (Twitch's) that change what we do: the
// others (4000, 4004, 4005, 4006) just reconnect.
const (
	closeClientSentTraffic = 4001
	closeFailedPingPong    = 4002
	closeConnectionUnused  = 4003
	closeInvalidReconnect  = 4007
)

// Refusals of Twitch's limits, before Twitch refuses (it would close the
// extra socket with 4000 or refuse the subscription with 429).
var (
	errSocketLimit       = errors.New("twitch: too many EventSub sockets for one user")
	errSubscriptionLimit = errors.New("twitch: too many subscriptions for one EventSub socket")
)

// checkSocketLimit refuses another socket for a user who has open sockets
// already.
func checkSocketLimit(userID string, open int) error {
	if open >= maxSocketsPerUser {
		return fmt.Errorf("%w: user %s has %d open, Twitch allows %d", errSocketLimit, userID, open, maxSocketsPerUser)
	}
	return nil
}

// checkSubscriptionLimit refuses putting subscriptions on one socket.
func checkSubscriptionLimit(subscriptions int) error {
	if subscriptions > maxSubscriptionsPerSocket {
		return fmt.Errorf("%w: %d wanted, Twitch allows %d", errSubscriptionLimit, subscriptions, maxSubscriptionsPerSocket)
	}
	return nil
}

// errStopBroadcaster ends a broadcaster's sessions until the account is
// listed as connected again (its grant is gone or revoked).
var errStopBroadcaster = errors.New("twitch: broadcaster's grant is gone")

// errKeepaliveExpired means the socket went silent past its keepalive.
var errKeepaliveExpired = errors.New("twitch: no EventSub message within the keepalive timeout")

// SessionsConfig configures the EventSub WebSocket sessions.
type SessionsConfig struct {
	Endpoints Endpoints
	Helix     *Helix
	Tokens    Tokens
	Accounts  Accounts
	Intake    *Intake
	Leases    *coord.Leases
	// Conn carries ControlSubject notices; nil: only the minutely resync.
	Conn *natsx.Conn
	// KeepaliveSeconds is asked for with ?keepalive_timeout_seconds= (10 to
	// 600); 0 takes Twitch's default.
	KeepaliveSeconds int
	Dialer           *websocket.Dialer // nil: websocket.DefaultDialer
	Logger           *slog.Logger
}

// Sessions keeps one EventSub WebSocket per connected broadcaster, each
// subscribed with the broadcaster's own token, and at most one replica
// holding each (lease "twitch.ws.<broadcaster id>").
type Sessions struct {
	cfg    SessionsConfig
	url    string
	dialer *websocket.Dialer
	log    *slog.Logger

	mu      sync.Mutex
	running map[string]*broadcasterRun
	sockets map[string]int // open sockets per user, against maxSocketsPerUser
}

type broadcasterRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSessions checks cfg.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	if cfg.Helix == nil || cfg.Tokens == nil || cfg.Accounts == nil || cfg.Intake == nil || cfg.Leases == nil {
		return nil, errors.New("twitch: sessions need Helix, Tokens, Accounts, Intake and Leases")
	}
	if cfg.KeepaliveSeconds != 0 && (cfg.KeepaliveSeconds < 10 || cfg.KeepaliveSeconds > 600) {
		return nil, fmt.Errorf("twitch: keepalive of %d s is outside Twitch's 10 to 600", cfg.KeepaliveSeconds)
	}
	raw := cfg.Endpoints.EventSub
	if raw == "" {
		raw = DefaultEventSubURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("twitch: EventSub URL %q is not a ws:// or wss:// URL", raw)
	}
	if cfg.KeepaliveSeconds > 0 {
		q := u.Query()
		q.Set("keepalive_timeout_seconds", strconv.Itoa(cfg.KeepaliveSeconds))
		u.RawQuery = q.Encode()
	}
	dialer := cfg.Dialer
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	log := cfg.Logger
	if log == nil {
		log = logging.Discard()
	}
	return &Sessions{cfg: cfg, url: u.String(), dialer: dialer, log: log.With(logging.KeyPlatform, "twitch"),
		running: map[string]*broadcasterRun{}, sockets: map[string]int{}}, nil
}

// Run keeps a session per connected broadcaster until ctx ends: it starts
// and stops them on ControlSubject notices and every resyncEvery.
func (s *Sessions) Run(ctx context.Context) error {
	notices := make(chan AccountChange, 64)
	if s.cfg.Conn != nil {
		sub, err := s.cfg.Conn.NC.Subscribe(ControlSubject, func(m *nats.Msg) {
			var change AccountChange
			if err := json.Unmarshal(m.Data, &change); err != nil {
				s.log.Warn("twitch: unreadable account notice", logging.KeySubject, m.Subject, logging.Err(err))
			}
			select {
			case notices <- change:
			default: // full: a resync is coming anyway
			}
		})
		if err != nil {
			return fmt.Errorf("twitch: unable to listen on %s: %w", ControlSubject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	defer s.stopAll()
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		s.resync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case change := <-notices:
			if change.Kind == KindBroadcaster && change.Status == StatusDisconnected {
				// At once, without waiting for the account list.
				s.stop(change.UserID)
			}
		}
	}
}

// resync starts a session for each connected broadcaster and stops the
// others. When the list cannot be read, what runs keeps running.
func (s *Sessions) resync(ctx context.Context) {
	accounts, err := s.cfg.Accounts.Connected(ctx, KindBroadcaster)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("twitch: unable to list connected broadcasters; will retry", logging.Err(err))
		}
		return
	}
	want := map[string]bool{}
	for _, a := range accounts {
		want[a.UserID] = true
		s.start(ctx, a.UserID)
	}
	s.mu.Lock()
	var gone []string
	for id := range s.running {
		if !want[id] {
			gone = append(gone, id)
		}
	}
	s.mu.Unlock()
	for _, id := range gone {
		s.stop(id)
	}
}

func (s *Sessions) start(ctx context.Context, broadcasterID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.running[broadcasterID]; ok {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	run := &broadcasterRun{cancel: cancel, done: make(chan struct{})}
	s.running[broadcasterID] = run
	go func() {
		defer close(run.done)
		defer func() {
			s.mu.Lock()
			if s.running[broadcasterID] == run {
				delete(s.running, broadcasterID)
			}
			s.mu.Unlock()
		}()
		key := "twitch.ws." + schemas.EncodeToken(broadcasterID)
		err := collectors.HoldLease(rctx, s.cfg.Leases, key, func(ctx context.Context) error {
			return s.serve(ctx, broadcasterID)
		})
		if err != nil {
			s.log.Warn("twitch: EventSub stopped for a broadcaster until it connects again",
				logging.KeyChannel, broadcasterID, logging.Err(err))
		}
	}()
}

func (s *Sessions) stop(broadcasterID string) {
	s.mu.Lock()
	run := s.running[broadcasterID]
	s.mu.Unlock()
	if run == nil {
		return
	}
	run.cancel()
	<-run.done
}

func (s *Sessions) stopAll() {
	s.mu.Lock()
	runs := make([]*broadcasterRun, 0, len(s.running))
	for _, run := range s.running {
		runs = append(runs, run)
	}
	s.mu.Unlock()
	for _, run := range runs {
		run.cancel()
	}
	for _, run := range runs {
		<-run.done
	}
}

// serve runs one broadcaster's sessions while the lease is held: a new
// session (new socket, subscriptions made again) whenever the last one
// ended, with back-off. It returns errStopBroadcaster when the grant is
// gone.
func (s *Sessions) serve(ctx context.Context, broadcasterID string) error {
	log := s.log.With(logging.KeyChannel, broadcasterID)
	d := newDeliverer(s.cfg.Intake, log)
	defer d.stop()
	wait := backoffFirst
	hurry := false
	for {
		began := time.Now()
		err := s.session(ctx, broadcasterID, d, hurry, log)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errStopBroadcaster) {
			return err
		}
		if time.Since(began) > stableAfter {
			wait = backoffFirst
		}
		code := closeCode(err)
		hurry = code == closeConnectionUnused
		metrics.Reconnects.WithLabelValues(schemas.PlatformTwitch, reconnectReason(code, err)).Inc()
		switch code {
		case closeClientSentTraffic, closeFailedPingPong, closeInvalidReconnect:
			log.Error("twitch: EventSub closed the socket for a client fault; reconnecting", "code", code, logging.Err(err))
		case closeConnectionUnused:
			log.Warn("twitch: EventSub closed an unused socket; reconnecting and subscribing faster", "code", code)
		default:
			// 4000, 4005, 4006 (Twitch's side or the network), 4004, a
			// silent socket, a failed dial.
			log.Warn("twitch: EventSub session ended; reconnecting", "code", code, logging.Err(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, backoffMost)
	}
}

// socket is one open EventSub WebSocket.
type socket struct {
	ws        *websocket.Conn
	sessionID string
	keepalive time.Duration
	closeOnce sync.Once
	release   func()
}

func (sk *socket) close() {
	sk.closeOnce.Do(func() {
		_ = sk.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = sk.ws.Close()
		sk.release()
	})
}

// endProbe bounds how long drainEnd waits for a socket's end.
const endProbe = 250 * time.Millisecond

// drainEnd reads what a socket not yet handed to a socketLoop holds, for
// up to endProbe, and returns how it ended (nil: it is still open).
// Notifications read go to d: Twitch does not send them again.
func (sk *socket) drainEnd(ctx context.Context, d *deliverer, log *slog.Logger) error {
	_ = sk.ws.SetReadDeadline(time.Now().Add(endProbe))
	defer func() { _ = sk.ws.SetReadDeadline(time.Time{}) }()
	for {
		_, data, err := sk.ws.ReadMessage()
		if err != nil {
			if closeCode(err) == 0 {
				return nil // the probe ran out, or the socket broke without a close frame
			}
			return fmt.Errorf("twitch: EventSub socket %s ended: %w", sk.sessionID, err)
		}
		msg, err := eventsub.ParseMessage(data)
		if err != nil || msg.Metadata.MessageType != eventsub.TypeNotification {
			continue
		}
		if queued, _ := d.offer(ctx, msg.Notification()); !queued {
			log.Error("twitch: notification dropped: the session ended before it was queued",
				logging.KeyEvent, msg.Metadata.MessageID, "type", msg.Metadata.SubscriptionType)
		}
	}
}

// frame is what a socket's reader hands the session loop.
type frame struct {
	from *socket
	msg  *eventsub.Message
	err  error // the socket ended
}

// session is one EventSub session: dial, welcome, subscribe, then read
// until the socket ends, following session_reconnect to new sockets.
func (s *Sessions) session(ctx context.Context, broadcasterID string, d *deliverer, hurry bool, log *slog.Logger) error {
	token, err := s.cfg.Tokens.UserToken(ctx, broadcasterID)
	if errors.Is(err, ErrNotConnected) {
		return fmt.Errorf("%w: %w", errStopBroadcaster, err)
	}
	if err != nil {
		return fmt.Errorf("twitch: unable to get the token of %s: %w", broadcasterID, err)
	}
	dial := func(ctx context.Context, rawURL string) (*socket, error) { return s.dial(ctx, broadcasterID, rawURL) }
	first, err := dial(ctx, s.url)
	if err != nil {
		return err
	}
	if err := s.subscribe(ctx, broadcasterID, first, eventsub.Specs(), token, hurry, log); err != nil {
		// Twitch may have closed the socket meanwhile: its 4003 (too slow
		// to subscribe) must reach serve, so that the next session hurries
		// rather than being as slow again.
		if end := first.drainEnd(ctx, d, log); end != nil {
			err = errors.Join(err, end)
		}
		first.close()
		return err
	}
	log.Info("twitch: EventSub session subscribed", logging.KeyID, first.sessionID)
	loop := &socketLoop{dial: dial, deliver: d, log: log,
		revoked: func(ctx context.Context, sub *eventsub.Subscription) error {
			if sub.Status != "authorization_revoked" && sub.Status != "user_removed" {
				return nil
			}
			if _, err := s.cfg.Tokens.Refresh(ctx, broadcasterID, ""); err != nil && !errors.Is(err, ErrNotConnected) {
				log.Warn("twitch: unable to check a revoked grant", logging.Err(err))
			}
			return fmt.Errorf("%w: subscription %s %s", errStopBroadcaster, sub.Type, sub.Status)
		}}
	return loop.run(ctx, first)
}

// socketLoop reads an EventSub session's sockets: notifications go to the
// deliverer in the order read, session_reconnect moves the session to a new
// socket, and silence past the keepalive ends it.
type socketLoop struct {
	dial    func(ctx context.Context, rawURL string) (*socket, error)
	deliver *deliverer
	log     *slog.Logger
	// revoked is told of each revocation; an error ends the session.
	revoked func(ctx context.Context, sub *eventsub.Subscription) error
	// moved is told when a session_reconnect landed on a new socket; an
	// error ends the session. May be nil.
	moved func(ctx context.Context, from, to *socket) error
	// frames carries the sockets' messages to the loop; nil makes one. A
	// test gives its own to see when the readers are ahead of the loop.
	frames chan frame
}

// run owns first (and every socket after it) and closes them on return,
// after handing the deliverer what was already read from them.
func (l *socketLoop) run(ctx context.Context, first *socket) error {
	done := make(chan struct{})
	frames := l.frames
	if frames == nil {
		frames = make(chan frame, 64)
	}
	current := first
	// open holds the sockets whose reader has not handed over its socket's
	// end yet.
	open := map[*socket]bool{current: true}
	var pending []eventsub.Notification // read, but not queued when ctx ended
	defer func() {
		l.shutdown(ctx, frames, open, pending)
		close(done)
	}()
	go read(current, frames, done, l.log)

	// Any message resets the keepalive timer; the grace covers the network.
	silence := func(sk *socket) time.Duration { return sk.keepalive + 2*time.Second + sk.keepalive/10 }
	timer := time.NewTimer(silence(current))
	defer timer.Stop()
	reset := func() {
		timer.Stop()
		timer.Reset(silence(current))
	}
	// Unbuffered: a socket is handed over only while run is here to take
	// it, so one dialled as run returns is closed by follow, not lost in a
	// buffer with its place in Twitch's per-user limit.
	switched := make(chan *socket)
	dialing := false
	var lost error // the current socket ended while its successor was dialled
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			return errKeepaliveExpired
		case next := <-switched:
			dialing = false
			if next == nil {
				err := fmt.Errorf("twitch: unable to follow session_reconnect of %s", current.sessionID)
				return errors.Join(err, lost)
			}
			lost = nil
			// Subscriptions moved with the session: nothing to make again.
			// The old socket is read a little longer for what Twitch sent it
			// before the move; the Intake drops anything seen twice.
			old := current
			current, open[next] = next, true
			go read(next, frames, done, l.log)
			time.AfterFunc(retiredDrain, old.close)
			reset()
			l.log.Info("twitch: EventSub session moved to a new socket", logging.KeyID, next.sessionID)
			if l.moved != nil {
				if err := l.moved(ctx, old, next); err != nil {
					return err
				}
			}
		case f := <-frames:
			if f.err != nil {
				delete(open, f.from)
				f.from.close()
				if f.from != current {
					continue // a retired socket, closed by us or by Twitch (4004)
				}
				if dialing {
					// Twitch closes the old socket (4004) once the new one
					// is in, which may be read before the new one's welcome
					// is: the session lives on if the new socket does.
					lost = f.err
					continue
				}
				return f.err
			}
			reset()
			switch f.msg.Metadata.MessageType {
			case eventsub.TypeNotification:
				n := f.msg.Notification()
				queued, waited := l.deliver.offer(ctx, n)
				if !queued {
					pending = append(pending, n)
					return nil
				}
				if waited {
					reset() // the wait for the queue was not silence
				}
			case eventsub.TypeSessionReconnect:
				if f.from != current || dialing {
					continue
				}
				dialing = true
				go l.follow(ctx, f.msg.Payload.Session.ReconnectURL, switched, done)
			case eventsub.TypeRevocation:
				sub := f.msg.Payload.Subscription
				l.log.Warn("twitch: EventSub subscription revoked", "type", sub.Type, "status", sub.Status,
					logging.KeyChannel, sub.Condition["broadcaster_user_id"]+sub.Condition["to_broadcaster_user_id"])
				if l.revoked != nil {
					if err := l.revoked(ctx, sub); err != nil {
						return err
					}
				}
			}
		}
	}
}

// shutdown closes the sockets still open and hands the deliverer every
// notification already read from them (pending first), within
// deliverDrain: Twitch does not send them again. Each reader's last frame
// is its socket's end, so once every open socket's end has come nothing
// read is left in frames.
func (l *socketLoop) shutdown(ctx context.Context, frames <-chan frame, open map[*socket]bool, pending []eventsub.Notification) {
	for sk := range open {
		sk.close()
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deliverDrain)
	defer cancel()
	offer := func(n eventsub.Notification) {
		if queued, _ := l.deliver.offer(dctx, n); !queued {
			l.log.Error("twitch: notification dropped at shutdown: the delivery queue stayed full",
				logging.KeyEvent, n.MessageID, "type", n.Subscription.Type)
		}
	}
	for _, n := range pending {
		offer(n)
	}
	for len(open) > 0 {
		select {
		case f := <-frames:
			if f.err != nil {
				delete(open, f.from)
				continue
			}
			if f.msg.Metadata.MessageType == eventsub.TypeNotification {
				offer(f.msg.Notification())
			}
		case <-dctx.Done():
			// The readers log what they still hold once done is closed.
			l.log.Error("twitch: EventSub sockets did not end within the drain time", "open", len(open))
			return
		}
	}
}

// follow dials a session_reconnect URL and hands the new socket over once it
// said welcome (nil when it failed).
func (l *socketLoop) follow(ctx context.Context, reconnectURL string, switched chan<- *socket, done <-chan struct{}) {
	next, err := l.dial(ctx, reconnectURL)
	if err != nil {
		l.log.Warn("twitch: unable to follow session_reconnect", logging.Err(err))
	}
	select {
	case switched <- next:
	case <-done:
		if next != nil {
			next.close()
		}
	}
}

// read hands a socket's messages to the session loop until it ends.
func read(sk *socket, frames chan<- frame, done <-chan struct{}, log *slog.Logger) {
	for {
		_, data, err := sk.ws.ReadMessage()
		var f frame
		if err != nil {
			f = frame{from: sk, err: fmt.Errorf("twitch: EventSub socket %s ended: %w", sk.sessionID, err)}
		} else {
			msg, perr := eventsub.ParseMessage(data)
			if perr != nil {
				log.Warn("twitch: unreadable EventSub message skipped", logging.Err(perr))
				continue
			}
			f = frame{from: sk, msg: msg}
		}
		select {
		case frames <- f:
		case <-done:
			if f.msg != nil && f.msg.Metadata.MessageType == eventsub.TypeNotification {
				log.Error("twitch: notification dropped at shutdown: read after the drain ended",
					logging.KeyEvent, f.msg.Metadata.MessageID, "type", f.msg.Metadata.SubscriptionType)
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// dial opens a socket for a user, within Twitch's limit of sockets per
// user, and reads its session_welcome.
func (s *Sessions) dial(ctx context.Context, userID, rawURL string) (*socket, error) {
	s.mu.Lock()
	if err := checkSocketLimit(userID, s.sockets[userID]); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.sockets[userID]++
	s.mu.Unlock()
	release := func() {
		s.mu.Lock()
		s.sockets[userID]--
		if s.sockets[userID] <= 0 {
			delete(s.sockets, userID)
		}
		s.mu.Unlock()
	}
	sk, err := dialWelcome(ctx, s.dialer, rawURL)
	if err != nil {
		release()
		return nil, err
	}
	metrics.Connections.WithLabelValues(schemas.PlatformTwitch).Inc()
	sk.release = func() {
		metrics.Connections.WithLabelValues(schemas.PlatformTwitch).Dec()
		release()
	}
	return sk, nil
}

// dialWelcome opens a socket and reads its session_welcome.
func dialWelcome(ctx context.Context, dialer *websocket.Dialer, rawURL string) (*socket, error) {
	dctx, cancel := context.WithTimeout(ctx, welcomeTimeout)
	defer cancel()
	ws, resp, err := dialer.DialContext(dctx, rawURL, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("twitch: unable to connect to EventSub: %w", err)
	}
	sk := &socket{ws: ws, release: func() {}}
	_ = ws.SetReadDeadline(time.Now().Add(welcomeTimeout))
	_, data, err := ws.ReadMessage()
	if err != nil {
		sk.close()
		return nil, fmt.Errorf("twitch: no session_welcome from EventSub: %w", err)
	}
	msg, err := eventsub.ParseMessage(data)
	if err == nil && msg.Metadata.MessageType != eventsub.TypeSessionWelcome {
		err = fmt.Errorf("got %s", msg.Metadata.MessageType)
	}
	if err != nil {
		sk.close()
		return nil, fmt.Errorf("twitch: EventSub did not start with session_welcome: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	sk.sessionID = msg.Payload.Session.ID
	sk.keepalive = time.Duration(msg.Payload.Session.KeepaliveTimeoutSeconds) * time.Second
	if sk.keepalive <= 0 {
		sk.keepalive = 10 * time.Second
	}
	return sk, nil
}

// Retries of one subscription within the keepalive window.
const (
	subscribeAttempts   = 4
	subscribeRetryFirst = 250 * time.Millisecond
)

// subscribe makes specs (every Spec) on the socket's session with the
// broadcaster's token, within the keepalive window after the welcome
// (Twitch closes an unused socket with 4003). The first is made alone so a
// refused token is refreshed once for all; the rest go at once. In a hurry
// (the last socket got 4003) they all go at once. A token refused (401) is
// refreshed once in both cases. A type Twitch refuses for good (a scope
// the broadcaster did not grant) is left out; one that still fails after
// the retries ends the session, so that the reconnect, with back-off, tries
// again rather than the channel going without it.
func (s *Sessions) subscribe(ctx context.Context, broadcasterID string, sk *socket, specs []eventsub.Spec, token string, hurry bool, log *slog.Logger) error {
	if err := checkSubscriptionLimit(len(specs)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, sk.keepalive)
	defer cancel()
	todo := specs
	alone := !hurry
	refreshed := false
	created := 0
	for len(todo) > 0 {
		batch := todo
		if alone {
			batch = todo[:1]
		}
		todo, alone = todo[len(batch):], false
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, spec := range batch {
			wg.Go(func() { errs[i] = s.createRetrying(ctx, token, spec, broadcasterID, sk.sessionID) })
		}
		wg.Wait()
		var unauthorized []eventsub.Spec
		var failed []error
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case errors.Is(err, errUnauthorized):
				unauthorized = append(unauthorized, batch[i])
			case errors.Is(err, errSubscriptionRefused):
				log.Error("twitch: subscription refused; the channel goes without it for this session",
					"type", batch[i].Type, logging.Err(err))
			default:
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			return fmt.Errorf("twitch: EventSub session %s would miss subscriptions: %w", sk.sessionID, errors.Join(failed...))
		}
		if len(unauthorized) == 0 {
			continue
		}
		if refreshed {
			return fmt.Errorf("twitch: the refreshed token of %s was refused too: %w", broadcasterID, errUnauthorized)
		}
		refreshed = true
		var err error
		token, err = s.cfg.Tokens.Refresh(ctx, broadcasterID, token)
		if errors.Is(err, ErrNotConnected) {
			return fmt.Errorf("%w: %w", errStopBroadcaster, err)
		}
		if err != nil {
			return fmt.Errorf("twitch: unable to refresh the token of %s: %w", broadcasterID, err)
		}
		todo = append(unauthorized, todo...)
	}
	if created == 0 {
		return fmt.Errorf("twitch: Twitch refused every subscription of %s", broadcasterID)
	}
	return nil
}

var (
	// errUnauthorized is Helix's 401 for a token.
	errUnauthorized = errors.New("twitch: token refused (401)")
	// errSubscriptionRefused is a refusal that trying again would not
	// change (400, 403 for a missing scope, …).
	errSubscriptionRefused = errors.New("twitch: subscription refused")
)

// createRetrying makes one subscription, trying again after a rate limit
// (once Ratelimit-Reset has come), a 5xx or a network error while the
// window (ctx) leaves time.
func (s *Sessions) createRetrying(ctx context.Context, token string, spec eventsub.Spec, broadcasterID, sessionID string) error {
	wait := subscribeRetryFirst
	for attempt := 1; ; attempt++ {
		resetIn, err := s.create(ctx, token, spec, broadcasterID, sessionID)
		if err == nil || errors.Is(err, errUnauthorized) || errors.Is(err, errSubscriptionRefused) || attempt == subscribeAttempts {
			return err
		}
		pause := max(resetIn, wait)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < pause {
			return fmt.Errorf("%w (no time left in the keepalive window to try again)", err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		wait *= 2
	}
}

// wsSubscriptionRequest is Create EventSub Subscription's body for the
// websocket transport, which has a session id and nothing else.
type wsSubscriptionRequest struct {
	Type      string            `json:"type"`
	Version   string            `json:"version"`
	Condition map[string]string `json:"condition"`
	Transport wsTransport       `json:"transport"`
}

type wsTransport struct {
	Method    string `json:"method"`
	SessionID string `json:"session_id"`
}

// create makes one WebSocket subscription; one that exists already is fine.
// After a 429 it reports how long until Twitch's rate limit resets.
func (s *Sessions) create(ctx context.Context, token string, spec eventsub.Spec, broadcasterID, sessionID string) (resetIn time.Duration, err error) {
	cond := map[string]string{}
	for k, v := range eventsub.Condition(spec, broadcasterID) {
		if v != "" {
			cond[k] = v
		}
	}
	body := wsSubscriptionRequest{Type: spec.Type, Version: spec.Version, Condition: cond,
		Transport: wsTransport{Method: eventsub.MethodWebSocket, SessionID: sessionID}}
	res, err := callHelix(ctx, s.cfg.Helix, http.MethodPost, "/eventsub/subscriptions", nil, body, token)
	if err != nil {
		return 0, fmt.Errorf("twitch: unable to create subscription %s: %w", spec.Type, err)
	}
	switch {
	case res.status >= 200 && res.status < 300, res.status == http.StatusConflict:
		return 0, nil
	case res.status == http.StatusUnauthorized:
		return 0, fmt.Errorf("%w: %s", errUnauthorized, res.message())
	case res.status == http.StatusTooManyRequests:
		return res.rateLimitWait(), fmt.Errorf("twitch: unable to create subscription %s: rate limited (429)", spec.Type)
	case res.status >= 500:
		return 0, fmt.Errorf("twitch: unable to create subscription %s: %d %s", spec.Type, res.status, res.message())
	}
	return 0, fmt.Errorf("%w: %s: %d %s", errSubscriptionRefused, spec.Type, res.status, res.message())
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}

// deliverer hands notifications to the Intake in the order they were read,
// away from the socket loop so a slow publish does not look like a silent
// socket. A notification that cannot be published is retried with back-off
// and never dropped while the lease is held: a WebSocket has no redelivery
// (closing it would lose the notifications Twitch has not sent yet, not get
// this one again). After the lease ended, what is queued gets deliverDrain
// more.
type deliverer struct {
	intake *Intake
	log    *slog.Logger
	queue  chan eventsub.Notification
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newDeliverer(intake *Intake, log *slog.Logger) *deliverer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &deliverer{intake: intake, log: log, queue: make(chan eventsub.Notification, 1024),
		ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go d.run()
	return d
}

// offer queues n, reporting whether it did before ctx ended and whether it
// had to wait for room.
func (d *deliverer) offer(ctx context.Context, n eventsub.Notification) (queued, waited bool) {
	select {
	case d.queue <- n:
		return true, false
	default:
	}
	select {
	case d.queue <- n:
		return true, true
	case <-ctx.Done():
		return false, true
	}
}

func (d *deliverer) run() {
	defer close(d.done)
	for n := range d.queue {
		wait := 100 * time.Millisecond
		for {
			err := d.intake.Deliver(d.ctx, n)
			if err == nil {
				break
			}
			if d.ctx.Err() != nil {
				d.log.Error("twitch: notification dropped: unable to publish it before stopping",
					logging.KeyEvent, n.MessageID, "type", n.Subscription.Type, logging.Err(err))
				break
			}
			d.log.Warn("twitch: unable to publish a notification; retrying", logging.KeyEvent, n.MessageID, logging.Err(err))
			select {
			case <-d.ctx.Done():
			case <-time.After(wait):
			}
			wait = min(wait*2, 5*time.Second)
		}
	}
}

func (d *deliverer) stop() {
	close(d.queue)
	t := time.AfterFunc(deliverDrain, d.cancel)
	<-d.done
	t.Stop()
	d.cancel()
}

// reconnectReason labels a reconnect for the metrics: the close code, a
// silent socket, or another error (a failed dial, a refused subscription).
func reconnectReason(code int, err error) string {
	switch {
	case code > 0:
		return fmt.Sprintf("close_%d", code)
	case errors.Is(err, errKeepaliveExpired):
		return "keepalive"
	}
	return "error"
}
