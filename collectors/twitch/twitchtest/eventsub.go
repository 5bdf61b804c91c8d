package twitchtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Twitch's EventSub WebSocket close codes.
const (
	CloseInternalError      = 4000
	CloseClientSentTraffic  = 4001
	CloseFailedPingPong     = 4002
	CloseConnectionUnused   = 4003
	CloseReconnectExpired   = 4004
	CloseNetworkTimeout     = 4005
	CloseNetworkError       = 4006
	CloseInvalidReconnect   = 4007
	defaultKeepaliveSeconds = 10
	// defaultReconnectGrace is how long an old socket lives after a
	// session_reconnect when the client never comes to the new URL (Twitch:
	// about 30 s).
	defaultReconnectGrace = 30 * time.Second
)

// SessionInfo describes one EventSub WebSocket session of the fake.
type SessionInfo struct {
	ID            string
	Subscriptions int
	Connected     bool
	// Retired: the socket the session had before a session_reconnect is
	// still open (HoldRetired).
	Retired bool
}

// eventsubState is the EventSub WebSocket part of the fake (owned by
// eventsub.go). Its own lock, esMu, is always taken after s.mu when both are
// held (revokedLocked runs under s.mu), never before.
type eventsubState struct {
	esMu       sync.Mutex
	esSessions map[string]*wsSession // by session id
	esConns    map[*wsConn]struct{}  // open sockets
	esSilenced bool
	// esWindow is how long a new session may go without a subscription
	// before it is closed with 4003: 0 is Twitch's rule (the keepalive
	// timeout), negative never closes.
	esWindow time.Duration
	esGrace  time.Duration // 0: defaultReconnectGrace
	esClosed bool
	// esHoldRetired keeps the old socket of a session_reconnect open after
	// the new one's welcome, until ReleaseRetired.
	esHoldRetired bool
	esOpened      int // sessions ever opened (not counting reconnects)
	esFail        []subscriptionFailure
	// esHold (HoldSubscriptions) is how many Create EventSub Subscription
	// calls of one websocket session must be waiting together before any is
	// answered; esArrived counts them by session id.
	esHold    int
	esArrived map[string]int
}

// subscriptionFailure is a Create EventSub Subscription failure queued by
// FailNextSubscriptions.
type subscriptionFailure struct {
	subType    string // "": any type
	left       int    // negative: until cleared
	status     int
	retryAfter time.Duration
}

// wsSession is an EventSub session: it outlives a socket across a
// session_reconnect, and its subscriptions move with it.
type wsSession struct {
	id        string
	keepalive time.Duration
	subs      []map[string]any
	conn      *wsConn // the socket notifications go to
	// retired is the socket before a session_reconnect, held open by
	// HoldRetired after the new socket's welcome.
	retired *wsConn
	// reconnectToken is the query value of the reconnect_url handed out;
	// empty when no reconnect is pending.
	reconnectToken string
	connectedAt    time.Time
}

// wsConn is one open socket.
type wsConn struct {
	ws        *websocket.Conn
	keepalive time.Duration

	writeMu   sync.Mutex
	lastWrite time.Time
	closed    bool
	done      chan struct{}
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) routeEventSub(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws", s.serveEventSub)
}

// SetSubscribeWindow sets how long a new session may stay without a
// subscription before the fake closes it with 4003: 0 is Twitch's rule (the
// keepalive timeout), a negative value disables the rule.
func (s *Server) SetSubscribeWindow(d time.Duration) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	s.esWindow = d
}

// SetReconnectGrace sets how long an old socket stays open after a
// session_reconnect when the client does not come to the new URL.
func (s *Server) SetReconnectGrace(d time.Duration) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	s.esGrace = d
}

// SilenceKeepalives stops (on) or resumes (off) the keepalive messages, so a
// client's keepalive timer fires.
func (s *Server) SilenceKeepalives(on bool) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	s.esSilenced = on
}

func (s *Server) serveEventSub(w http.ResponseWriter, r *http.Request) {
	keepalive := defaultKeepaliveSeconds
	if v := r.URL.Query().Get("keepalive_timeout_seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "keepalive_timeout_seconds must be a number", http.StatusBadRequest)
			return
		}
		// Twitch takes the nearest acceptable value.
		keepalive = min(max(n, 10), 600)
	}
	reconnect := r.URL.Query().Get("reconnect")
	if reconnect != "" {
		s.esMu.Lock()
		sess := s.sessionByTokenLocked(reconnect)
		s.esMu.Unlock()
		if sess == nil {
			http.Error(w, "unknown reconnect url", http.StatusNotFound)
			return
		}
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	c := &wsConn{ws: ws, keepalive: time.Duration(keepalive) * time.Second, done: make(chan struct{})}

	s.esMu.Lock()
	if s.esClosed {
		s.esMu.Unlock()
		_ = ws.Close()
		return
	}
	if s.esConns == nil {
		s.esConns = map[*wsConn]struct{}{}
		s.esSessions = map[string]*wsSession{}
	}
	s.esConns[c] = struct{}{}
	var sess *wsSession
	var old *wsConn
	if reconnect != "" {
		sess = s.sessionByTokenLocked(reconnect)
		if sess == nil { // the grace ran out between the check and here
			s.esMu.Unlock()
			c.closeWith(CloseInvalidReconnect, "invalid reconnect")
			s.dropConn(c)
			return
		}
		// The subscriptions move to the new socket with its welcome (sent
		// below, under the same lock): what was sent before went to the old
		// one, what comes after goes here.
		old, sess.conn, sess.reconnectToken = sess.conn, c, ""
		c.keepalive = sess.keepalive
		if s.esHoldRetired {
			// Twitch may still deliver on the old socket what it had queued
			// there (NotifyRetired) until it closes it (ReleaseRetired).
			if sess.retired != nil {
				go sess.retired.closeWith(CloseReconnectExpired, "reconnected again")
			}
			sess.retired, old = old, nil
		}
	} else {
		sess = &wsSession{id: randomHex(16), keepalive: c.keepalive, conn: c, connectedAt: time.Now().UTC()}
		s.esSessions[sess.id] = sess
		s.esOpened++
	}
	c.send(message("session_welcome", "", "", map[string]any{"session": map[string]any{
		"id": sess.id, "status": "connected", "connected_at": sess.connectedAt.Format(time.RFC3339Nano),
		"keepalive_timeout_seconds": int(sess.keepalive / time.Second), "reconnect_url": nil, "recovery_url": nil,
	}}))
	window := s.esWindow
	if window == 0 {
		window = sess.keepalive
	}
	fresh := reconnect == ""
	s.esMu.Unlock()
	if old != nil {
		old.closeWith(CloseReconnectExpired, "client reconnected")
	}

	go s.keepAlive(c)
	if fresh && window > 0 {
		go s.closeIfUnused(sess, c, window)
	}
	// Twitch allows no inbound traffic: any message closes with 4001.
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			break
		}
		c.closeWith(CloseClientSentTraffic, "client sent inbound traffic")
		break
	}
	c.closeWith(websocket.CloseNormalClosure, "")
	s.dropConn(c)
}

// dropConn forgets a closed socket, and its session when it was the
// session's socket (Twitch deletes a session's subscriptions with it).
func (s *Server) dropConn(c *wsConn) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	delete(s.esConns, c)
	for id, sess := range s.esSessions {
		if sess.conn == c {
			delete(s.esSessions, id)
		}
		if sess.retired == c {
			sess.retired = nil
		}
	}
}

func (s *Server) sessionByTokenLocked(token string) *wsSession {
	for _, sess := range s.esSessions {
		if sess.reconnectToken != "" && sess.reconnectToken == token {
			return sess
		}
	}
	return nil
}

func (s *Server) keepAlive(c *wsConn) {
	tick := time.NewTicker(max(c.keepalive/20, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		s.esMu.Lock()
		silenced := s.esSilenced
		s.esMu.Unlock()
		c.writeMu.Lock()
		// Sent a little before the timeout runs out so that the client sees
		// one within keepalive_timeout_seconds, as Twitch promises.
		due := !silenced && !c.closed && time.Since(c.lastWrite) >= c.keepalive*9/10
		c.writeMu.Unlock()
		if due {
			c.send(message("session_keepalive", "", "", map[string]any{}))
		}
	}
}

func (s *Server) closeIfUnused(sess *wsSession, c *wsConn, window time.Duration) {
	select {
	case <-c.done:
		return
	case <-time.After(window):
	}
	s.esMu.Lock()
	unused := sess.conn == c && len(sess.subs) == 0
	s.esMu.Unlock()
	if unused {
		c.closeWith(CloseConnectionUnused, "connection unused")
	}
}

// send writes one message; a failed write closes the socket.
func (c *wsConn) send(v any) bool {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed {
		return false
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteJSON(v); err != nil {
		c.closed = true
		_ = c.ws.Close()
		close(c.done)
		return false
	}
	c.lastWrite = time.Now()
	return true
}

// closeWith sends a close frame with code and closes the socket.
func (c *wsConn) closeWith(code int, reason string) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = c.ws.Close()
	close(c.done)
}

func message(kind, subType, subVersion string, payload any) map[string]any {
	meta := map[string]any{"message_id": randomUUID(), "message_type": kind,
		"message_timestamp": time.Now().UTC().Format(time.RFC3339Nano)}
	if subType != "" {
		meta["subscription_type"], meta["subscription_version"] = subType, subVersion
	}
	return map[string]any{"metadata": meta, "payload": payload}
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (s *Server) closeEventSub() {
	s.esMu.Lock()
	s.esClosed = true
	conns := make([]*wsConn, 0, len(s.esConns))
	for c := range s.esConns {
		conns = append(conns, c)
	}
	s.esMu.Unlock()
	for _, c := range conns {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
}

// revokedLocked is called with s.mu held when a user's grant is revoked:
// each subscription of theirs gets a revocation message (status
// authorization_revoked) on its socket and is removed.
func (s *Server) revokedLocked(userID string) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	for _, sess := range s.esSessions {
		kept := sess.subs[:0]
		for _, sub := range sess.subs {
			if !conditionHas(sub, userID) {
				kept = append(kept, sub)
				continue
			}
			revoked := copySub(sub)
			revoked["status"] = "authorization_revoked"
			sess.conn.send(message("revocation", str(sub["type"]), str(sub["version"]),
				map[string]any{"subscription": revoked}))
		}
		sess.subs = kept
	}
}

// sessionExists reports whether a WebSocket session id is live.
func (s *Server) sessionExists(id string) bool {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	_, ok := s.esSessions[id]
	return ok
}

// sessionSubscribed tells the WebSocket part that Helix created a
// subscription on a session.
func (s *Server) sessionSubscribed(sessionID string, sub map[string]any) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	if sess, ok := s.esSessions[sessionID]; ok {
		sess.subs = append(sess.subs, copySub(sub))
	}
}

// Notify sends a notification of subType for broadcasterID, with a new
// message id, to every session holding a matching subscription, and
// returns the message id.
func (s *Server) Notify(broadcasterID, subType string, event any) string {
	id := randomUUID()
	s.NotifyWithID(id, broadcasterID, subType, event)
	return id
}

// NotifyWithID is Notify with a given message id: sending one twice is how
// Twitch's at-least-once delivery looks to a client. It returns how many
// sessions it went to.
func (s *Server) NotifyWithID(messageID, broadcasterID, subType string, event any) int {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	sent := 0
	for _, sess := range s.esSessions {
		for _, sub := range sess.subs {
			if str(sub["type"]) != subType || !conditionNames(sub, broadcasterID) {
				continue
			}
			if sess.conn.send(notification(messageID, sub, event)) {
				sent++
			}
		}
	}
	return sent
}

// NotifySession sends a notification for sub (a subscription as Helix
// returns it) to one session, whatever it subscribed: for conduit shards,
// whose subscriptions live on the conduit. It returns the message id, or ""
// when the session is not connected.
func (s *Server) NotifySession(sessionID string, sub map[string]any, event any) string {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	sess, ok := s.esSessions[sessionID]
	if !ok {
		return ""
	}
	id := randomUUID()
	if !sess.conn.send(notification(id, sub, event)) {
		return ""
	}
	return id
}

func notification(messageID string, sub map[string]any, event any) map[string]any {
	m := message("notification", str(sub["type"]), str(sub["version"]),
		map[string]any{"subscription": sub, "event": event})
	m["metadata"].(map[string]any)["message_id"] = messageID
	return m
}

// Reconnect sends session_reconnect on a session's socket. The client's
// connection to the reconnect_url takes the session over (same id, same
// subscriptions) once it was sent its welcome, and the old socket is then
// closed with 4004 (or held open, see HoldRetired); until then
// notifications still go to the old socket. Without a new connection the
// old socket closes with 4004 after the reconnect grace, taking the session
// with it. It reports whether the session exists.
func (s *Server) Reconnect(sessionID string) bool {
	s.esMu.Lock()
	sess, ok := s.esSessions[sessionID]
	if !ok {
		s.esMu.Unlock()
		return false
	}
	token := randomHex(12)
	sess.reconnectToken = token
	url := "ws" + strings.TrimPrefix(s.HTTP.URL, "http") + "/ws?reconnect=" + token
	old := sess.conn
	old.send(message("session_reconnect", "", "", map[string]any{"session": map[string]any{
		"id": sess.id, "status": "reconnecting", "connected_at": sess.connectedAt.Format(time.RFC3339Nano),
		"keepalive_timeout_seconds": nil, "reconnect_url": url, "recovery_url": nil,
	}}))
	grace := s.esGrace
	if grace == 0 {
		grace = defaultReconnectGrace
	}
	s.esMu.Unlock()
	go func() {
		select {
		case <-old.done:
		case <-time.After(grace):
			s.esMu.Lock()
			if sess.reconnectToken == token {
				sess.reconnectToken = ""
			}
			s.esMu.Unlock()
			old.closeWith(CloseReconnectExpired, "reconnect grace time expired")
		}
	}()
	return true
}

// CloseSession closes a session's socket with code (4000 for an internal
// error, …); the session and its subscriptions end with it.
func (s *Server) CloseSession(id string, code int) bool {
	s.esMu.Lock()
	sess, ok := s.esSessions[id]
	s.esMu.Unlock()
	if !ok {
		return false
	}
	sess.conn.closeWith(code, "closed by the test")
	return true
}

// Sessions lists the live sessions.
func (s *Server) Sessions() []SessionInfo {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	out := make([]SessionInfo, 0, len(s.esSessions))
	for _, sess := range s.esSessions {
		sess.conn.writeMu.Lock()
		connected := !sess.conn.closed
		sess.conn.writeMu.Unlock()
		retired := false
		if sess.retired != nil {
			sess.retired.writeMu.Lock()
			retired = !sess.retired.closed
			sess.retired.writeMu.Unlock()
		}
		out = append(out, SessionInfo{ID: sess.id, Subscriptions: len(sess.subs), Connected: connected, Retired: retired})
	}
	return out
}

// Connections counts the sockets open now.
func (s *Server) Connections() int {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	return len(s.esConns)
}

// conditionNames reports whether a subscription's condition names user.
func conditionNames(sub map[string]any, user string) bool {
	if user == "" {
		return false
	}
	cond, _ := sub["condition"].(map[string]any)
	for _, k := range []string{"broadcaster_user_id", "to_broadcaster_user_id", "from_broadcaster_user_id"} {
		if str(cond[k]) == user {
			return true
		}
	}
	return false
}

// copySub deep-copies a subscription through JSON, which also turns typed
// maps (map[string]string conditions) into the generic form.
func copySub(sub map[string]any) map[string]any {
	b, _ := json.Marshal(sub)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// conditionHas reports whether any condition field of a subscription is
// user: the subscriptions a user's grant stands behind.
func conditionHas(sub map[string]any, user string) bool {
	cond, _ := sub["condition"].(map[string]any)
	for _, v := range cond {
		if user != "" && str(v) == user {
			return true
		}
	}
	return false
}

// NotifyConduit sends a notification of subType for broadcasterID through
// each conduit holding a matching subscription, to one enabled websocket
// shard (the first; Twitch balances over them), and returns the message id
// ("" when no shard took it).
func (s *Server) NotifyConduit(broadcasterID, subType string, event any) string {
	id := randomUUID()
	conduits := s.Conduits()
	sent := false
	for _, sub := range s.Subscriptions() {
		if sub.Method != "conduit" || sub.Type != subType || !conditionNames(map[string]any{"condition": anyMap(sub.Condition)}, broadcasterID) {
			continue
		}
		for _, c := range conduits {
			if c.ID != sub.ConduitID {
				continue
			}
			for _, sh := range c.Shards {
				if sh.Status != "enabled" || sh.Method != "websocket" {
					continue
				}
				s.esMu.Lock()
				sess, ok := s.esSessions[sh.SessionID]
				if ok && sess.conn.send(notification(id, subscriptionJSON(&sub), event)) {
					sent = true
				}
				s.esMu.Unlock()
				if ok {
					break
				}
			}
		}
	}
	if !sent {
		return ""
	}
	return id
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// SessionsOpened counts the sessions opened so far (a socket that took a
// session over through session_reconnect opens none).
func (s *Server) SessionsOpened() int {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	return s.esOpened
}

// HoldRetired (on) keeps the old socket of a session_reconnect open after
// the client's new socket got its welcome, until ReleaseRetired or the
// reconnect grace: Twitch may still deliver there what it had queued, and
// may deliver a notification on both. Notify then goes to the new socket,
// NotifyRetired to the old.
func (s *Server) HoldRetired(on bool) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	s.esHoldRetired = on
}

// NotifyRetired sends a notification with messageID on the held-open old
// socket of every session with a matching subscription, and returns to how
// many it went.
func (s *Server) NotifyRetired(messageID, broadcasterID, subType string, event any) int {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	sent := 0
	for _, sess := range s.esSessions {
		if sess.retired == nil {
			continue
		}
		for _, sub := range sess.subs {
			if str(sub["type"]) == subType && conditionNames(sub, broadcasterID) && sess.retired.send(notification(messageID, sub, event)) {
				sent++
			}
		}
	}
	return sent
}

// ReleaseRetired closes every held-open old socket with 4004 and returns
// how many there were.
func (s *Server) ReleaseRetired() int {
	s.esMu.Lock()
	var retired []*wsConn
	for _, sess := range s.esSessions {
		if sess.retired != nil {
			retired = append(retired, sess.retired)
			sess.retired = nil
		}
	}
	s.esMu.Unlock()
	for _, c := range retired {
		c.closeWith(CloseReconnectExpired, "client reconnected")
	}
	return len(retired)
}

// FailNextSubscriptions makes the next n Create EventSub Subscription calls
// for subType ("" for any type) fail with status; a negative n fails every
// one until the next call for subType, and n = 0 just clears. A 429 carries
// Ratelimit-Reset (retryAfter from now, in epoch seconds), another status
// Retry-After when retryAfter > 0.
func (s *Server) FailNextSubscriptions(subType string, n, status int, retryAfter time.Duration) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	kept := s.esFail[:0]
	for _, f := range s.esFail {
		if f.subType != subType {
			kept = append(kept, f)
		}
	}
	s.esFail = kept
	if n != 0 {
		s.esFail = append(s.esFail, subscriptionFailure{subType: subType, left: n, status: status, retryAfter: retryAfter})
	}
}

// HoldSubscriptions makes each Create EventSub Subscription call for a
// websocket session wait until n calls for that session have come (a client
// sending them all at once), or the session ended (the call then gets
// Twitch's 400 for an unknown session); n <= 0 stops holding. A client
// making one alone first never gets past it before its session ends.
func (s *Server) HoldSubscriptions(n int) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	s.esHold = n
	s.esArrived = map[string]int{}
}

// holdSubscription is HoldSubscriptions' wait for one call.
func (s *Server) holdSubscription(r *http.Request, sessionID string) {
	s.esMu.Lock()
	if s.esHold <= 0 {
		s.esMu.Unlock()
		return
	}
	s.esArrived[sessionID]++
	s.esMu.Unlock()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.esMu.Lock()
		_, live := s.esSessions[sessionID]
		release := s.esHold <= 0 || s.esArrived[sessionID] >= s.esHold || !live || s.esClosed
		s.esMu.Unlock()
		if release {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// takeSubscriptionFailure uses up one queued failure for subType.
func (s *Server) takeSubscriptionFailure(subType string) (subscriptionFailure, bool) {
	s.esMu.Lock()
	defer s.esMu.Unlock()
	for i, f := range s.esFail {
		if f.subType != "" && f.subType != subType {
			continue
		}
		if f.left > 0 {
			s.esFail[i].left--
			if s.esFail[i].left == 0 {
				s.esFail = append(s.esFail[:i], s.esFail[i+1:]...)
			}
		}
		return f, true
	}
	return subscriptionFailure{}, false
}

// subscriptionRefused is called by the Create EventSub Subscription route
// (helix.go) once the token is authorized, before it reads the body: it
// answers a failure queued by FailNextSubscriptions, or the 400 a strict
// Twitch gives a websocket subscription whose transport carries more than
// method and session_id (a callback or secret, even empty) or whose
// condition has an empty or non-string value. It reports whether it
// answered; r.Body can be read again either way.
func (s *Server) subscriptionRefused(w http.ResponseWriter, r *http.Request) bool {
	raw, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err != nil {
		return false // the route finds the body unreadable too
	}
	var req struct {
		Type      string         `json:"type"`
		Condition map[string]any `json:"condition"`
		Transport map[string]any `json:"transport"`
	}
	if json.Unmarshal(raw, &req) != nil {
		return false // the route answers 400
	}
	if str(req.Transport["method"]) == "websocket" {
		s.holdSubscription(r, str(req.Transport["session_id"]))
	}
	if f, ok := s.takeSubscriptionFailure(req.Type); ok {
		switch {
		case f.status == http.StatusTooManyRequests:
			w.Header().Set("Ratelimit-Limit", "800")
			w.Header().Set("Ratelimit-Remaining", "0")
			w.Header().Set("Ratelimit-Reset", strconv.FormatInt(time.Now().Add(f.retryAfter).Unix(), 10))
		case f.retryAfter > 0:
			w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Round(time.Second)/time.Second)))
		}
		WriteError(w, f.status, "failure queued by the test")
		return true
	}
	if str(req.Transport["method"]) != "websocket" {
		return false
	}
	for k := range req.Transport {
		if k != "method" && k != "session_id" {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("The websocket transport does not take %s", k))
			return true
		}
	}
	for k, v := range req.Condition {
		if text, ok := v.(string); !ok || text == "" {
			WriteError(w, http.StatusBadRequest, fmt.Sprintf("condition.%s must be a non-empty string", k))
			return true
		}
	}
	return false
}
