package discordtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Gateway opcodes (discord.com/developers/docs/topics/opcodes-and-status-codes).
const (
	opDispatch       = 0
	opHeartbeat      = 1
	opIdentify       = 2
	opResume         = 6
	opReconnect      = 7
	opInvalidSession = 9
	opHello          = 10
	opHeartbeatAck   = 11
)

// Gateway close codes the fake uses.
const (
	closeAuthenticationFailed = 4004
	closeInvalidShard         = 4010
)

// Guild is a guild the fake's bot is in: sent as GUILD_CREATE after READY to
// the shard that owns it.
type Guild struct {
	ID, Name, OwnerID string
	Roles             []Role
	Channels          []Channel
}

// Role is a guild role; the @everyone role has the guild's id.
type Role struct {
	ID, Name    string
	Permissions int64
}

// Channel is a guild channel (Type 0 text, 11 public thread with ParentID).
type Channel struct {
	ID, Name, ParentID string
	Type               int
}

// Identify is what a client sent in an op 2 Identify.
type Identify struct {
	Token   string
	Intents int64
	Shard   [2]int
}

type gwFrame struct {
	Op   int             `json:"op"`
	D    json.RawMessage `json:"d,omitempty"`
	S    *int64          `json:"s,omitempty"`
	Type string          `json:"t,omitempty"`
}

type gwDispatch struct {
	seq  int64
	typ  string
	data json.RawMessage
}

// gwSession is one gateway session (what READY names, what Resume refers
// to): it outlives its connections, keeping every dispatch for replay.
type gwSession struct {
	id    string
	shard [2]int
	seq   int64
	log   []gwDispatch
	conn  *gwConn // nil while disconnected
}

type gwConn struct {
	ws *websocket.Conn
	// resumeURL: connected through ResumeGatewayURL.
	resumeURL bool
	writeMu   sync.Mutex
	session   *gwSession
}

func (c *gwConn) write(f gwFrame) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.ws.WriteJSON(f)
}

// gatewayState is the gateway part of the fake.
type gatewayState struct {
	heartbeatInterval time.Duration
	guilds            []Guild
	sessions          map[string]*gwSession
	conns             map[*gwConn]bool
	identifies        []Identify
	resumes           int
	heartbeats        int
	nextSession       int
	refuseGateway     bool
	gatewayAttempts   int
	refusedResumes    int
}

var gwUpgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) routeGateway(mux *http.ServeMux) {
	// discordgo adds a slash and ?v=…&encoding=json to the URL it was given.
	mux.HandleFunc("GET /gateway", s.serveGateway)
	mux.HandleFunc("GET /gateway/{$}", s.serveGateway)
	// READY names this as resume_gateway_url: resumes must come here.
	mux.HandleFunc("GET /gateway-resume", s.serveResumeGateway)
	mux.HandleFunc("GET /gateway-resume/{$}", s.serveResumeGateway)
}

// ResumeGatewayURL is the resume_gateway_url READY hands out. Like
// Discord's, it differs from GatewayURL, and a Resume sent to GatewayURL
// is refused (op 9, not resumable).
func (s *Server) ResumeGatewayURL() string {
	return "ws" + strings.TrimPrefix(s.HTTP.URL, "http") + "/gateway-resume"
}

// RefuseGateway makes the gateway answer 503 to every connection attempt
// (true) or accept them again (false).
func (s *Server) RefuseGateway(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseGateway = refuse
}

// GatewayAttempts counts connection attempts, refused ones included.
func (s *Server) GatewayAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gatewayAttempts
}

// RefusedResumes counts op 6 Resumes refused because they came to the
// main gateway URL instead of the resume one.
func (s *Server) RefusedResumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusedResumes
}

func (s *Server) closeGateway() {
	s.mu.Lock()
	conns := make([]*gwConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
}

// SetHeartbeatInterval sets the interval op 10 Hello announces to the next
// connections (default 41.25 s, Discord's usual value): short in tests
// that watch heartbeats.
func (s *Server) SetHeartbeatInterval(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeatInterval = d
}

// AddGuild puts the bot in a guild; sessions identifying later get it.
func (s *Server) AddGuild(g Guild) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.guilds = append(s.guilds, g)
}

// Identifies returns the op 2 Identify payloads received, in order.
func (s *Server) Identifies() []Identify {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Identify(nil), s.identifies...)
}

// Resumes counts accepted op 6 Resumes.
func (s *Server) Resumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumes
}

// Heartbeats counts op 1 heartbeats received.
func (s *Server) Heartbeats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeats
}

// Connections returns the shards ([id, count]) of the sessions that are
// connected now, one entry per connection that has identified or resumed.
func (s *Server) Connections() [][2]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][2]int
	for c := range s.conns {
		if c.session != nil {
			out = append(out, c.session.shard)
		}
	}
	return out
}

// ShardOf is the shard a guild's events go to: (guild_id >> 22) % count.
func ShardOf(guildID string, count int) int {
	id, err := strconv.ParseUint(guildID, 10, 64)
	if err != nil || count <= 1 {
		return 0
	}
	return int((id >> 22) % uint64(count))
}

// Dispatch sends an op 0 dispatch of type typ (MESSAGE_CREATE, …) with data
// to the sessions that should get it: the session of the guild's shard
// when data has a guild_id, every session otherwise. A session whose
// connection is down keeps it for its Resume. It returns how many sessions
// took it.
func (s *Server) Dispatch(typ string, data any) int {
	raw, err := json.Marshal(data)
	if err != nil {
		s.t.Errorf("discordtest: unable to encode %s: %v", typ, err)
		return 0
	}
	var probe struct {
		GuildID string `json:"guild_id"`
	}
	_ = json.Unmarshal(raw, &probe)
	s.mu.Lock()
	var targets []*gwSession
	for _, sess := range s.sessions {
		if probe.GuildID == "" || ShardOf(probe.GuildID, sess.shard[1]) == sess.shard[0] {
			targets = append(targets, sess)
		}
	}
	type send struct {
		conn *gwConn
		f    gwFrame
	}
	var sends []send
	for _, sess := range targets {
		f := s.record(sess, typ, raw)
		if sess.conn != nil {
			sends = append(sends, send{sess.conn, f})
		}
	}
	s.mu.Unlock()
	for _, x := range sends {
		_ = x.conn.write(x.f)
	}
	return len(targets)
}

// record numbers a dispatch in a session; s.mu is held.
func (s *Server) record(sess *gwSession, typ string, raw json.RawMessage) gwFrame {
	sess.seq++
	sess.log = append(sess.log, gwDispatch{seq: sess.seq, typ: typ, data: raw})
	seq := sess.seq
	return gwFrame{Op: opDispatch, D: raw, S: &seq, Type: typ}
}

// DropConnection closes every connection without a close frame, as a
// network failure would: clients should resume.
func (s *Server) DropConnection() {
	s.mu.Lock()
	var conns []*gwConn
	for c := range s.conns {
		conns = append(conns, c)
		if c.session != nil && c.session.conn == c {
			c.session.conn = nil
		}
		delete(s.conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.NetConn().Close()
	}
}

// InvalidSession sends op 9 to every connection; when not resumable the
// sessions are forgotten, so the clients must identify again.
func (s *Server) InvalidSession(resumable bool) {
	s.mu.Lock()
	var conns []*gwConn
	for c := range s.conns {
		conns = append(conns, c)
		if !resumable && c.session != nil {
			delete(s.sessions, c.session.id)
			c.session = nil
		}
	}
	s.mu.Unlock()
	d, _ := json.Marshal(resumable)
	for _, c := range conns {
		_ = c.write(gwFrame{Op: opInvalidSession, D: d})
	}
}

// Reconnect sends op 7: clients should reconnect and resume.
func (s *Server) Reconnect() {
	s.mu.Lock()
	var conns []*gwConn
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.write(gwFrame{Op: opReconnect})
	}
}

func (s *Server) serveGateway(w http.ResponseWriter, r *http.Request) {
	s.serveGatewayConn(w, r, false)
}

func (s *Server) serveResumeGateway(w http.ResponseWriter, r *http.Request) {
	s.serveGatewayConn(w, r, true)
}

func (s *Server) serveGatewayConn(w http.ResponseWriter, r *http.Request, resumeURL bool) {
	s.mu.Lock()
	s.gatewayAttempts++
	refuse := s.refuseGateway
	s.mu.Unlock()
	if refuse {
		http.Error(w, "gateway unavailable", http.StatusServiceUnavailable)
		return
	}
	ws, err := gwUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &gwConn{ws: ws, resumeURL: resumeURL}
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*gwConn]bool{}
		s.sessions = map[string]*gwSession{}
	}
	s.conns[c] = true
	interval := s.heartbeatInterval
	s.mu.Unlock()
	if interval <= 0 {
		interval = 41250 * time.Millisecond
	}
	defer s.forget(c)
	hello, _ := json.Marshal(map[string]any{"heartbeat_interval": interval.Milliseconds()})
	if err := c.write(gwFrame{Op: opHello, D: hello}); err != nil {
		return
	}
	for {
		var f gwFrame
		if err := ws.ReadJSON(&f); err != nil {
			return
		}
		if !s.handleFrame(c, f) {
			return
		}
	}
}

func (s *Server) forget(c *gwConn) {
	s.mu.Lock()
	delete(s.conns, c)
	if c.session != nil && c.session.conn == c {
		c.session.conn = nil
	}
	s.mu.Unlock()
	_ = c.ws.Close()
}

// handleFrame answers one client frame; false ends the connection.
func (s *Server) handleFrame(c *gwConn, f gwFrame) bool {
	switch f.Op {
	case opHeartbeat:
		s.mu.Lock()
		s.heartbeats++
		s.mu.Unlock()
		return c.write(gwFrame{Op: opHeartbeatAck}) == nil
	case opIdentify:
		return s.identify(c, f.D)
	case opResume:
		return s.resume(c, f.D)
	}
	// Presence updates, member requests: accepted and ignored.
	return true
}

func (s *Server) closeWith(c *gwConn, code int, reason string) bool {
	c.writeMu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	return false
}

func (s *Server) tokenOK(token string) bool {
	return strings.TrimPrefix(token, "Bot ") == s.BotToken
}

func (s *Server) identify(c *gwConn, d json.RawMessage) bool {
	var in struct {
		Token   string  `json:"token"`
		Intents int64   `json:"intents"`
		Shard   *[2]int `json:"shard"`
	}
	if err := json.Unmarshal(d, &in); err != nil {
		return s.closeWith(c, 4002, "decode error")
	}
	shard := [2]int{0, 1}
	if in.Shard != nil {
		shard = *in.Shard
	}
	s.mu.Lock()
	s.identifies = append(s.identifies, Identify{Token: in.Token, Intents: in.Intents, Shard: shard})
	s.mu.Unlock()
	if !s.tokenOK(in.Token) {
		return s.closeWith(c, closeAuthenticationFailed, "Authentication failed.")
	}
	if shard[1] < 1 || shard[0] < 0 || shard[0] >= shard[1] {
		return s.closeWith(c, closeInvalidShard, "Invalid shard.")
	}

	s.mu.Lock()
	s.nextSession++
	sess := &gwSession{id: fmt.Sprintf("fake-session-%d", s.nextSession), shard: shard, conn: c}
	s.sessions[sess.id] = sess
	c.session = sess
	var mine []Guild
	unavailable := []map[string]any{}
	for _, g := range s.guilds {
		if ShardOf(g.ID, shard[1]) == shard[0] {
			mine = append(mine, g)
			unavailable = append(unavailable, map[string]any{"id": g.ID, "unavailable": true})
		}
	}
	ready, _ := json.Marshal(map[string]any{
		"v":                  9,
		"user":               map[string]any{"id": s.AppID, "username": "WaddleBot", "discriminator": "0", "bot": true},
		"guilds":             unavailable,
		"session_id":         sess.id,
		"resume_gateway_url": s.ResumeGatewayURL(),
		"shard":              shard,
		"application":        map[string]any{"id": s.AppID, "flags": 0},
	})
	frames := []gwFrame{s.record(sess, "READY", ready)}
	for _, g := range mine {
		raw, _ := json.Marshal(GuildCreate(g))
		frames = append(frames, s.record(sess, "GUILD_CREATE", raw))
	}
	s.mu.Unlock()
	for _, f := range frames {
		if c.write(f) != nil {
			return false
		}
	}
	return true
}

func (s *Server) resume(c *gwConn, d json.RawMessage) bool {
	var in struct {
		Token     string `json:"token"`
		SessionID string `json:"session_id"`
		Seq       int64  `json:"seq"`
	}
	if err := json.Unmarshal(d, &in); err != nil {
		return s.closeWith(c, 4002, "decode error")
	}
	if !s.tokenOK(in.Token) {
		return s.closeWith(c, closeAuthenticationFailed, "Authentication failed.")
	}
	s.mu.Lock()
	if !c.resumeURL {
		// Discord wants resumes on the session's resume_gateway_url.
		s.refusedResumes++
		s.mu.Unlock()
		return c.write(gwFrame{Op: opInvalidSession, D: json.RawMessage("false")}) == nil
	}
	sess, ok := s.sessions[in.SessionID]
	if !ok {
		s.mu.Unlock()
		return c.write(gwFrame{Op: opInvalidSession, D: json.RawMessage("false")}) == nil
	}
	s.resumes++
	if old := sess.conn; old != nil && old != c {
		old.session = nil
	}
	sess.conn = c
	c.session = sess
	var frames []gwFrame
	for _, m := range sess.log {
		if m.seq > in.Seq {
			seq := m.seq
			frames = append(frames, gwFrame{Op: opDispatch, D: m.data, S: &seq, Type: m.typ})
		}
	}
	frames = append(frames, s.record(sess, "RESUMED", json.RawMessage("{}")))
	s.mu.Unlock()
	for _, f := range frames {
		if c.write(f) != nil {
			return false
		}
	}
	return true
}

// GuildCreate is the GUILD_CREATE payload of g.
func GuildCreate(g Guild) map[string]any {
	roles := []map[string]any{}
	for _, r := range g.Roles {
		roles = append(roles, map[string]any{"id": r.ID, "name": r.Name, "permissions": strconv.FormatInt(r.Permissions, 10), "position": 0})
	}
	channels := []map[string]any{}
	threads := []map[string]any{}
	for _, ch := range g.Channels {
		m := map[string]any{"id": ch.ID, "name": ch.Name, "type": ch.Type, "guild_id": g.ID}
		if ch.ParentID != "" {
			m["parent_id"] = ch.ParentID
		}
		if ch.Type == 10 || ch.Type == 11 || ch.Type == 12 {
			threads = append(threads, m)
		} else {
			channels = append(channels, m)
		}
	}
	return map[string]any{
		"id": g.ID, "name": g.Name, "owner_id": g.OwnerID, "roles": roles,
		"channels": channels, "threads": threads, "members": []any{}, "unavailable": false,
		"joined_at": "2024-01-01T00:00:00+00:00", "member_count": 1,
	}
}

// User is a Discord user.
type User struct {
	ID, Username, GlobalName string
	Bot                      bool
}

func (u User) payload() map[string]any {
	m := map[string]any{"id": u.ID, "username": u.Username, "discriminator": "0", "bot": u.Bot}
	if u.GlobalName != "" {
		m["global_name"] = u.GlobalName
	}
	return m
}

// Message is a MESSAGE_CREATE; Roles are the author's role ids in the guild.
type Message struct {
	ID, ChannelID, GuildID, Content string
	Author                          User
	Roles                           []string
	Timestamp                       time.Time
}

// MessageCreate is the MESSAGE_CREATE payload of m (a guild message when
// GuildID is set, with the partial member Discord adds; a DM otherwise).
func MessageCreate(m Message) map[string]any {
	ts := m.Timestamp
	if ts.IsZero() {
		ts = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	}
	p := map[string]any{
		"id": m.ID, "channel_id": m.ChannelID, "author": m.Author.payload(), "content": m.Content,
		"timestamp": ts.Format(time.RFC3339Nano), "edited_timestamp": nil, "tts": false,
		"mention_everyone": false, "mentions": []any{}, "mention_roles": []any{}, "attachments": []any{},
		"embeds": []any{}, "pinned": false, "type": 0,
	}
	if m.GuildID != "" {
		p["guild_id"] = m.GuildID
		roles := m.Roles
		if roles == nil {
			roles = []string{}
		}
		p["member"] = map[string]any{"roles": roles, "joined_at": "2024-01-01T00:00:00+00:00", "deaf": false, "mute": false}
	}
	return p
}

// MemberAdd is the GUILD_MEMBER_ADD payload of a user joining a guild.
func MemberAdd(guildID string, u User, joinedAt time.Time) map[string]any {
	return map[string]any{"guild_id": guildID, "user": u.payload(), "roles": []string{},
		"joined_at": joinedAt.Format(time.RFC3339Nano), "deaf": false, "mute": false}
}

// BanAdd is the GUILD_BAN_ADD payload.
func BanAdd(guildID string, u User) map[string]any {
	return map[string]any{"guild_id": guildID, "user": u.payload()}
}

// MemberUpdate is the GUILD_MEMBER_UPDATE payload; a non-zero until is a
// timeout (communication_disabled_until).
func MemberUpdate(guildID string, u User, roles []string, until time.Time) map[string]any {
	if roles == nil {
		roles = []string{}
	}
	p := map[string]any{"guild_id": guildID, "user": u.payload(), "roles": roles,
		"joined_at": "2024-01-01T00:00:00+00:00", "communication_disabled_until": nil}
	if !until.IsZero() {
		p["communication_disabled_until"] = until.Format(time.RFC3339Nano)
	}
	return p
}

// Interaction is an INTERACTION_CREATE of the /waddlebot command.
type Interaction struct {
	ID, Token, GuildID, ChannelID string
	User                          User
	// Permissions are the member's computed permissions in the channel.
	Permissions int64
	Command     string
	Args        string
	// Autocomplete makes it a type 4 with the command option focused.
	Autocomplete bool
}

// InteractionCreate is the INTERACTION_CREATE payload of in (application id
// appID).
func InteractionCreate(appID string, in Interaction) map[string]any {
	options := []map[string]any{{"name": "command", "type": 3, "value": in.Command}}
	if in.Autocomplete {
		options[0]["focused"] = true
	}
	if in.Args != "" {
		options = append(options, map[string]any{"name": "args", "type": 3, "value": in.Args})
	}
	typ := 2
	if in.Autocomplete {
		typ = 4
	}
	p := map[string]any{
		"id": in.ID, "application_id": appID, "type": typ, "token": in.Token, "version": 1,
		"channel_id": in.ChannelID,
		"data":       map[string]any{"id": "300000000000000001", "name": "waddlebot", "type": 1, "options": options},
	}
	if in.GuildID != "" {
		p["guild_id"] = in.GuildID
		p["member"] = map[string]any{"user": in.User.payload(), "roles": []string{},
			"permissions": strconv.FormatInt(in.Permissions, 10), "joined_at": "2024-01-01T00:00:00+00:00"}
	} else {
		p["user"] = in.User.payload()
	}
	return p
}
