package twitchtest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SentChat is a chat message the fake accepted through Send Chat Message.
type SentChat struct {
	BroadcasterID, SenderID, Text, ReplyParentID, MessageID string
	At                                                      time.Time
}

// Shoutout is a shoutout the fake accepted through Send Shoutout.
type Shoutout struct {
	FromBroadcasterID, ToBroadcasterID, ModeratorID string
	At                                              time.Time
}

// Ban is a ban or timeout the fake accepted through Ban User.
type Ban struct {
	BroadcasterID, ModeratorID, UserID, Reason string
	DurationSeconds                            int // 0: a permanent ban
}

// DeletedMessage is a message removed through Delete Chat Messages.
type DeletedMessage struct {
	BroadcasterID, ModeratorID, MessageID string
}

// Whisper is a whisper the fake accepted through Send Whisper.
type Whisper struct {
	FromUserID, ToUserID, Text string
}

// Subscription is an EventSub subscription created through Helix.
type Subscription struct {
	ID, Status, Type, Version string
	Condition                 map[string]string
	Method                    string // websocket, webhook or conduit
	SessionID, ConduitID      string
	Callback, Secret          string
	// Owner is the user whose token created a websocket subscription
	// (empty for app-token subscriptions).
	Owner     string
	CreatedAt time.Time
}

// Conduit is an EventSub conduit and its shards.
type Conduit struct {
	ID     string
	Shards []ConduitShard
}

// ConduitShard is one shard of a conduit.
type ConduitShard struct {
	ID, Status          string
	Method              string // websocket or webhook; empty while unassigned
	SessionID, Callback string
	ConnectedAt         time.Time
}

// helixState is the Helix part of the fake (owned by helix.go). Guarded by
// Server.mu.
type helixState struct {
	chat      []SentChat
	chatCalls int
	failChat  []chatFailure
	dropChat  []string // drop_reason codes for the next sends
	shoutouts []Shoutout
	bans      []Ban
	deleted   []DeletedMessage
	whispers  []Whisper
	// moderators: broadcaster id → user ids moderating there.
	moderators map[string]map[string]bool
	subs       []*Subscription
	conduits   []*Conduit
}

type chatFailure struct {
	status     int
	retryAfter time.Duration
}

const maxChatChars = 500

func (s *Server) routeHelix(mux *http.ServeMux) {
	mux.HandleFunc("POST /helix/chat/messages", s.helixSendChat)
	mux.HandleFunc("POST /helix/chat/shoutouts", s.helixShoutout)
	mux.HandleFunc("POST /helix/moderation/bans", s.helixBan)
	mux.HandleFunc("DELETE /helix/moderation/chat", s.helixDeleteChat)
	mux.HandleFunc("POST /helix/whispers", s.helixWhisper)
	mux.HandleFunc("GET /helix/users", s.helixUsers)
	mux.HandleFunc("GET /helix/channels", s.helixChannels)
	mux.HandleFunc("GET /helix/moderation/channels", s.helixModeratedChannels)
	mux.HandleFunc("POST /helix/eventsub/subscriptions", s.helixCreateSubscription)
	mux.HandleFunc("GET /helix/eventsub/subscriptions", s.helixListSubscriptions)
	mux.HandleFunc("DELETE /helix/eventsub/subscriptions", s.helixDeleteSubscription)
	mux.HandleFunc("POST /helix/eventsub/conduits", s.helixCreateConduit)
	mux.HandleFunc("GET /helix/eventsub/conduits", s.helixListConduits)
	mux.HandleFunc("PATCH /helix/eventsub/conduits", s.helixUpdateConduit)
	mux.HandleFunc("DELETE /helix/eventsub/conduits", s.helixDeleteConduit)
	mux.HandleFunc("GET /helix/eventsub/conduits/shards", s.helixListShards)
	mux.HandleFunc("PATCH /helix/eventsub/conduits/shards", s.helixUpdateShards)
}

// ---- test hooks ----

// FailNextChat makes the next n Send Chat Message calls fail with status:
// 429 carries Ratelimit-Reset (epoch seconds, retryAfter from now); other
// statuses carry Retry-After in seconds when retryAfter > 0.
func (s *Server) FailNextChat(n int, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failChat = append(s.failChat, chatFailure{status: status, retryAfter: retryAfter})
	}
}

// DropNextChat makes the next n Send Chat Message calls answer 200 with
// is_sent false and a drop_reason with code.
func (s *Server) DropNextChat(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.dropChat = append(s.dropChat, code)
	}
}

// Chat returns the chat messages sent so far.
func (s *Server) Chat() []SentChat {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.chat)
}

// ChatCalls counts requests to Send Chat Message, failed ones included.
func (s *Server) ChatCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chatCalls
}

// Shoutouts returns the shoutouts sent so far.
func (s *Server) Shoutouts() []Shoutout {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.shoutouts)
}

// Bans returns the bans and timeouts so far.
func (s *Server) Bans() []Ban {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bans)
}

// DeletedMessages returns the chat messages deleted so far.
func (s *Server) DeletedMessages() []DeletedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deleted)
}

// Whispers returns the whispers sent so far.
func (s *Server) Whispers() []Whisper {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.whispers)
}

// SetModerator makes userID a moderator (or not) in broadcasterID's channel.
func (s *Server) SetModerator(broadcasterID, userID string, mod bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.moderators == nil {
		s.moderators = map[string]map[string]bool{}
	}
	if s.moderators[broadcasterID] == nil {
		s.moderators[broadcasterID] = map[string]bool{}
	}
	if mod {
		s.moderators[broadcasterID][userID] = true
	} else {
		delete(s.moderators[broadcasterID], userID)
	}
}

// Subscriptions returns copies of every EventSub subscription.
func (s *Server) Subscriptions() []Subscription {
	s.markDisconnectedSessions()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		cp := *sub
		cp.Condition = cloneCondition(sub.Condition)
		out = append(out, cp)
	}
	return out
}

// SetSubscriptionStatus changes a subscription's status (as Twitch does when
// a webhook keeps failing or a grant is revoked); false when it is unknown.
func (s *Server) SetSubscriptionStatus(id, status string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.ID == id {
			sub.Status = status
			return true
		}
	}
	return false
}

// Conduits returns copies of the conduits and their shards.
func (s *Server) Conduits() []Conduit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conduit, 0, len(s.conduits))
	for _, c := range s.conduits {
		out = append(out, Conduit{ID: c.ID, Shards: slices.Clone(c.Shards)})
	}
	return out
}

// ---- chat ----

func (s *Server) helixSendChat(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.chatCalls++
	s.mu.Unlock()
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	var body struct {
		BroadcasterID string `json:"broadcaster_id"`
		SenderID      string `json:"sender_id"`
		Message       string `json:"message"`
		ReplyParentID string `json:"reply_parent_message_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		WriteError(w, http.StatusBadRequest, "The request body is not valid JSON")
		return
	}
	switch {
	case tok.UserID == "":
		WriteError(w, http.StatusUnauthorized, "This fake requires a user access token to send chat")
		return
	case body.SenderID != tok.UserID:
		WriteError(w, http.StatusUnauthorized, "The sender_id must match the user ID in the user access token")
		return
	case !slices.Contains(tok.Scopes, "user:write:chat"):
		WriteError(w, http.StatusUnauthorized, "Missing scope: user:write:chat")
		return
	case body.BroadcasterID == "" || body.Message == "":
		WriteError(w, http.StatusBadRequest, "Missing required parameter: broadcaster_id, sender_id and message are required")
		return
	case utf8.RuneCountInString(body.Message) > maxChatChars:
		WriteError(w, http.StatusBadRequest, "The message is too long")
		return
	}

	s.mu.Lock()
	if len(s.failChat) > 0 {
		f := s.failChat[0]
		s.failChat = s.failChat[1:]
		s.mu.Unlock()
		if f.status == http.StatusTooManyRequests {
			w.Header().Set("Ratelimit-Limit", "800")
			w.Header().Set("Ratelimit-Remaining", "0")
			w.Header().Set("Ratelimit-Reset", strconv.FormatInt(time.Now().Add(f.retryAfter).Unix(), 10))
		} else if f.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.retryAfter.Round(time.Second)/time.Second)))
		}
		WriteError(w, f.status, "Injected failure")
		return
	}
	if len(s.dropChat) > 0 {
		code := s.dropChat[0]
		s.dropChat = s.dropChat[1:]
		s.mu.Unlock()
		WriteJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{
			"message_id": "", "is_sent": false,
			"drop_reason": map[string]any{"code": code, "message": "Your message is being checked by mods and has not been sent."},
		}}})
		return
	}
	sent := SentChat{BroadcasterID: body.BroadcasterID, SenderID: body.SenderID, Text: body.Message,
		ReplyParentID: body.ReplyParentID, MessageID: newUUID(), At: time.Now()}
	s.chat = append(s.chat, sent)
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{
		"message_id": sent.MessageID, "is_sent": true,
	}}})
}

// moderatorAllowed checks that the token belongs to moderatorID, has scope,
// and that moderatorID is the broadcaster or one of their moderators; it
// writes Twitch's error otherwise.
func (s *Server) moderatorAllowed(w http.ResponseWriter, tok *Token, broadcasterID, moderatorID, scope string) bool {
	switch {
	case tok.UserID == "" || tok.UserID != moderatorID:
		WriteError(w, http.StatusUnauthorized, "The ID in moderator_id must match the user ID in the user access token")
		return false
	case !slices.Contains(tok.Scopes, scope):
		WriteError(w, http.StatusUnauthorized, "Missing scope: "+scope)
		return false
	}
	s.mu.Lock()
	mod := moderatorID == broadcasterID || s.moderators[broadcasterID][moderatorID]
	s.mu.Unlock()
	if !mod {
		WriteError(w, http.StatusForbidden, "The user in moderator_id is not one of the broadcaster's moderators")
		return false
	}
	return true
}

func (s *Server) helixShoutout(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to, mod := q.Get("from_broadcaster_id"), q.Get("to_broadcaster_id"), q.Get("moderator_id")
	if from == "" || to == "" || mod == "" {
		WriteError(w, http.StatusBadRequest, "Missing required parameter: from_broadcaster_id, to_broadcaster_id and moderator_id are required")
		return
	}
	if !s.moderatorAllowed(w, tok, from, mod, "moderator:manage:shoutouts") {
		return
	}
	if from == to {
		WriteError(w, http.StatusBadRequest, "The broadcaster may not give themselves a Shoutout")
		return
	}
	if _, known := s.UserByID(to); !known {
		WriteError(w, http.StatusBadRequest, "The to_broadcaster_id is not a valid user")
		return
	}
	s.mu.Lock()
	s.shoutouts = append(s.shoutouts, Shoutout{FromBroadcasterID: from, ToBroadcasterID: to, ModeratorID: mod, At: time.Now()})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) helixBan(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	broadcaster, mod := q.Get("broadcaster_id"), q.Get("moderator_id")
	var body struct {
		Data struct {
			UserID   string `json:"user_id"`
			Duration int    `json:"duration"`
			Reason   string `json:"reason"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || broadcaster == "" || mod == "" || body.Data.UserID == "" {
		WriteError(w, http.StatusBadRequest, "Missing required parameter: broadcaster_id, moderator_id and data.user_id are required")
		return
	}
	if body.Data.Duration < 0 || body.Data.Duration > 1209600 {
		WriteError(w, http.StatusBadRequest, "The duration must be between 1 and 1209600 seconds")
		return
	}
	if !s.moderatorAllowed(w, tok, broadcaster, mod, "moderator:manage:banned_users") {
		return
	}
	now := time.Now().UTC()
	var end any
	if body.Data.Duration > 0 {
		end = now.Add(time.Duration(body.Data.Duration) * time.Second).Format(time.RFC3339)
	}
	s.mu.Lock()
	s.bans = append(s.bans, Ban{BroadcasterID: broadcaster, ModeratorID: mod, UserID: body.Data.UserID,
		Reason: body.Data.Reason, DurationSeconds: body.Data.Duration})
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": []any{map[string]any{
		"broadcaster_id": broadcaster, "moderator_id": mod, "user_id": body.Data.UserID,
		"created_at": now.Format(time.RFC3339), "end_time": end,
	}}})
}

func (s *Server) helixDeleteChat(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	broadcaster, mod := q.Get("broadcaster_id"), q.Get("moderator_id")
	if broadcaster == "" || mod == "" {
		WriteError(w, http.StatusBadRequest, "Missing required parameter: broadcaster_id and moderator_id are required")
		return
	}
	if !s.moderatorAllowed(w, tok, broadcaster, mod, "moderator:manage:chat_messages") {
		return
	}
	s.mu.Lock()
	s.deleted = append(s.deleted, DeletedMessage{BroadcasterID: broadcaster, ModeratorID: mod, MessageID: q.Get("message_id")})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) helixWhisper(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := q.Get("from_user_id"), q.Get("to_user_id")
	var body struct {
		Message string `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || from == "" || to == "" || body.Message == "" {
		WriteError(w, http.StatusBadRequest, "Missing required parameter: from_user_id, to_user_id and message are required")
		return
	}
	switch {
	case tok.UserID == "" || tok.UserID != from:
		WriteError(w, http.StatusUnauthorized, "The ID in from_user_id must match the user ID in the user access token")
		return
	case !slices.Contains(tok.Scopes, "user:manage:whispers"):
		WriteError(w, http.StatusUnauthorized, "Missing scope: user:manage:whispers")
		return
	}
	if _, known := s.UserByID(to); !known {
		WriteError(w, http.StatusNotFound, "The ID in to_user_id was not found")
		return
	}
	s.mu.Lock()
	s.whispers = append(s.whispers, Whisper{FromUserID: from, ToUserID: to, Text: body.Message})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// ---- lookups ----

func userJSON(u User) map[string]any {
	return map[string]any{
		"id": u.ID, "login": u.Login, "display_name": u.DisplayName, "type": "", "broadcaster_type": "",
		"description": "", "profile_image_url": "", "offline_image_url": "", "view_count": 0,
		"created_at": "2016-12-14T20:32:28Z",
	}
}

func (s *Server) helixUsers(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	ids, logins := q["id"], q["login"]
	if len(ids)+len(logins) > 100 {
		WriteError(w, http.StatusBadRequest, "The request may specify at most 100 id and login parameters")
		return
	}
	if len(ids)+len(logins) == 0 {
		if tok.UserID == "" {
			WriteError(w, http.StatusBadRequest, "The id or login query parameter is required with an app access token")
			return
		}
		ids = []string{tok.UserID}
	}
	s.mu.Lock()
	data := []any{}
	for _, u := range s.users {
		if slices.Contains(ids, u.ID) || slices.ContainsFunc(logins, func(l string) bool { return strings.EqualFold(l, u.Login) }) {
			data = append(data, userJSON(u))
		}
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) helixChannels(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	ids := r.URL.Query()["broadcaster_id"]
	if len(ids) == 0 {
		WriteError(w, http.StatusBadRequest, "Missing required parameter \"broadcaster_id\"")
		return
	}
	data := []any{}
	for _, id := range ids {
		u, ok := s.UserByID(id)
		if !ok {
			continue
		}
		data = append(data, map[string]any{
			"broadcaster_id": u.ID, "broadcaster_login": u.Login, "broadcaster_name": u.DisplayName,
			"broadcaster_language": "en", "game_id": gameID(u.Category), "game_name": u.Category, "title": u.Title,
			"delay": 0, "tags": []string{}, "content_classification_labels": []string{}, "is_branded_content": false,
		})
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

// gameID makes a stable numeric-looking id for a category name.
func gameID(category string) string {
	if category == "" {
		return ""
	}
	var h uint32 = 2166136261
	for i := 0; i < len(category); i++ {
		h = (h ^ uint32(category[i])) * 16777619
	}
	return strconv.FormatUint(uint64(h%1000000), 10)
}

func (s *Server) helixModeratedChannels(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	userID := r.URL.Query().Get("user_id")
	switch {
	case userID == "":
		WriteError(w, http.StatusBadRequest, "Missing required parameter \"user_id\"")
		return
	case tok.UserID != userID:
		WriteError(w, http.StatusUnauthorized, "The user_id must match the user ID in the user access token")
		return
	case !slices.Contains(tok.Scopes, "user:read:moderated_channels"):
		WriteError(w, http.StatusUnauthorized, "Missing scope: user:read:moderated_channels")
		return
	}
	s.mu.Lock()
	data := []any{}
	for broadcaster, mods := range s.moderators {
		if !mods[userID] {
			continue
		}
		u, known := s.users[broadcaster]
		if !known {
			u = User{ID: broadcaster}
		}
		data = append(data, map[string]any{"broadcaster_id": u.ID, "broadcaster_login": u.Login, "broadcaster_name": u.DisplayName})
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "pagination": map[string]any{}})
}

// ---- EventSub subscriptions ----

type transportJSON struct {
	Method    string `json:"method"`
	Callback  string `json:"callback"`
	Secret    string `json:"secret"`
	SessionID string `json:"session_id"`
	ConduitID string `json:"conduit_id"`
}

// subscriptionJSON renders a subscription as Twitch does (the secret never
// leaves).
func subscriptionJSON(sub *Subscription) map[string]any {
	transport := map[string]any{"method": sub.Method}
	switch sub.Method {
	case "websocket":
		transport["session_id"] = sub.SessionID
		transport["connected_at"] = sub.CreatedAt.UTC().Format(time.RFC3339Nano)
	case "webhook":
		transport["callback"] = sub.Callback
	case "conduit":
		transport["conduit_id"] = sub.ConduitID
	}
	condition := map[string]any{}
	for k, v := range sub.Condition {
		condition[k] = v
	}
	cost := 1
	if sub.Method == "websocket" || sub.Owner != "" {
		cost = 0
	}
	return map[string]any{
		"id": sub.ID, "status": sub.Status, "type": sub.Type, "version": sub.Version,
		"condition": condition, "transport": transport,
		"created_at": sub.CreatedAt.UTC().Format(time.RFC3339Nano), "cost": cost,
	}
}

func cloneCondition(c map[string]string) map[string]string {
	out := make(map[string]string, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

func sameTransport(a *Subscription, t transportJSON) bool {
	if a.Method != t.Method {
		return false
	}
	switch t.Method {
	case "websocket":
		return a.SessionID == t.SessionID
	case "webhook":
		return a.Callback == t.Callback
	default:
		return a.ConduitID == t.ConduitID
	}
}

func (s *Server) helixCreateSubscription(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if s.subscriptionRefused(w, r) {
		return
	}
	var body struct {
		Type      string            `json:"type"`
		Version   string            `json:"version"`
		Condition map[string]string `json:"condition"`
		Transport transportJSON     `json:"transport"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		WriteError(w, http.StatusBadRequest, "The request body is not valid JSON")
		return
	}
	// helix's condition struct sends every field, the unused ones empty.
	for k, v := range body.Condition {
		if v == "" {
			delete(body.Condition, k)
		}
	}
	if body.Type == "" || body.Version == "" || len(body.Condition) == 0 {
		WriteError(w, http.StatusBadRequest, "type, version and condition are required")
		return
	}
	switch body.Transport.Method {
	case "websocket":
		if tok.UserID == "" {
			WriteError(w, http.StatusUnauthorized, "The websocket transport requires a user access token")
			return
		}
		if body.Transport.SessionID == "" || !s.sessionExists(body.Transport.SessionID) {
			WriteError(w, http.StatusBadRequest, "The websocket session_id is not valid")
			return
		}
	case "webhook":
		if tok.UserID != "" {
			WriteError(w, http.StatusUnauthorized, "The webhook transport requires an app access token")
			return
		}
		if !strings.HasPrefix(body.Transport.Callback, "https://") && !strings.HasPrefix(body.Transport.Callback, "http://") ||
			len(body.Transport.Secret) < 10 || len(body.Transport.Secret) > 100 {
			WriteError(w, http.StatusBadRequest, "The webhook transport needs a callback URL and a secret of 10 to 100 characters")
			return
		}
	case "conduit":
		if tok.UserID != "" {
			WriteError(w, http.StatusUnauthorized, "The conduit transport requires an app access token")
			return
		}
	default:
		WriteError(w, http.StatusBadRequest, "transport.method must be websocket, webhook or conduit")
		return
	}

	s.mu.Lock()
	if body.Transport.Method == "conduit" && s.conduitLocked(body.Transport.ConduitID) == nil {
		s.mu.Unlock()
		WriteError(w, http.StatusBadRequest, "The conduit_id is not valid")
		return
	}
	for _, sub := range s.subs {
		if sub.Type == body.Type && sub.Version == body.Version && maps2Equal(sub.Condition, body.Condition) &&
			sameTransport(sub, body.Transport) {
			s.mu.Unlock()
			WriteError(w, http.StatusConflict, "subscription already exists")
			return
		}
	}
	sub := &Subscription{ID: newUUID(), Status: "enabled", Type: body.Type, Version: body.Version,
		Condition: cloneCondition(body.Condition), Method: body.Transport.Method,
		SessionID: body.Transport.SessionID, ConduitID: body.Transport.ConduitID,
		Callback: body.Transport.Callback, Secret: body.Transport.Secret, Owner: tok.UserID, CreatedAt: time.Now()}
	if sub.Method != "websocket" {
		sub.Owner = ""
	}
	s.subs = append(s.subs, sub)
	rendered := subscriptionJSON(sub)
	total, cost := s.totalsLocked(tok.UserID)
	s.mu.Unlock()
	if sub.Method == "websocket" {
		s.sessionSubscribed(sub.SessionID, subscriptionJSON(sub))
	}
	WriteJSON(w, http.StatusAccepted, map[string]any{"data": []any{rendered}, "total": total,
		"total_cost": cost, "max_total_cost": 10000})
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// visibleLocked reports whether a token of owner ("" for the app) sees sub:
// an app token sees webhook and conduit subscriptions, a user token its own
// websocket ones.
func visibleLocked(sub *Subscription, owner string) bool {
	if owner == "" {
		return sub.Method != "websocket"
	}
	return sub.Method == "websocket" && sub.Owner == owner
}

func (s *Server) totalsLocked(owner string) (total, cost int) {
	for _, sub := range s.subs {
		if visibleLocked(sub, owner) {
			total++
			if c, _ := subscriptionJSON(sub)["cost"].(int); c > 0 {
				cost += c
			}
		}
	}
	return total, cost
}

// markDisconnectedSessions gives websocket subscriptions whose session is
// gone the status Twitch shows for them. The WebSocket part is asked
// without s.mu held: it has its own lock.
func (s *Server) markDisconnectedSessions() {
	s.mu.Lock()
	var sessions []string
	for _, sub := range s.subs {
		if sub.Method == "websocket" && sub.Status == "enabled" {
			sessions = append(sessions, sub.SessionID)
		}
	}
	s.mu.Unlock()
	gone := map[string]bool{}
	for _, id := range sessions {
		if !s.sessionExists(id) {
			gone[id] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sub := range s.subs {
		if sub.Method == "websocket" && sub.Status == "enabled" && gone[sub.SessionID] {
			sub.Status = "websocket_disconnected"
		}
	}
}

func (s *Server) helixListSubscriptions(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	s.markDisconnectedSessions()
	q := r.URL.Query()
	first := 100
	if v := q.Get("first"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			WriteError(w, http.StatusBadRequest, "first must be between 1 and 100")
			return
		}
		first = n
	}
	start := 0
	if after := q.Get("after"); after != "" {
		n, err := strconv.Atoi(after)
		if err != nil || n < 0 {
			WriteError(w, http.StatusBadRequest, "The cursor in after is not valid")
			return
		}
		start = n
	}
	s.mu.Lock()
	var matched []*Subscription
	for _, sub := range s.subs {
		if !visibleLocked(sub, tok.UserID) {
			continue
		}
		if v := q.Get("status"); v != "" && sub.Status != v {
			continue
		}
		if v := q.Get("type"); v != "" && sub.Type != v {
			continue
		}
		if v := q.Get("subscription_id"); v != "" && sub.ID != v {
			continue
		}
		if v := q.Get("user_id"); v != "" && !slices.Contains(mapValues(sub.Condition), v) {
			continue
		}
		matched = append(matched, sub)
	}
	data := []any{}
	for i := start; i < len(matched) && i < start+first; i++ {
		data = append(data, subscriptionJSON(matched[i]))
	}
	pagination := map[string]any{}
	if start+first < len(matched) {
		pagination["cursor"] = strconv.Itoa(start + first)
	}
	total, cost := s.totalsLocked(tok.UserID)
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "total": total, "total_cost": cost,
		"max_total_cost": 10000, "pagination": pagination})
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (s *Server) helixDeleteSubscription(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok {
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		WriteError(w, http.StatusBadRequest, "Missing required parameter \"id\"")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, sub := range s.subs {
		if sub.ID == id && visibleLocked(sub, tok.UserID) {
			s.subs = slices.Delete(s.subs, i, i+1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	WriteError(w, http.StatusNotFound, "The subscription was not found")
}

// ---- conduits ----

func (s *Server) conduitLocked(id string) *Conduit {
	for _, c := range s.conduits {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func conduitJSON(c *Conduit) map[string]any {
	return map[string]any{"id": c.ID, "shard_count": len(c.Shards)}
}

func resizeShards(c *Conduit, n int) {
	for len(c.Shards) < n {
		c.Shards = append(c.Shards, ConduitShard{ID: strconv.Itoa(len(c.Shards)), Status: "disabled"})
	}
	c.Shards = c.Shards[:n]
}

// appOnly writes 401 unless tok is an app access token, as conduit calls require.
func appOnly(w http.ResponseWriter, tok *Token) bool {
	if tok.UserID != "" {
		WriteError(w, http.StatusUnauthorized, "Conduit requests require an app access token")
		return false
	}
	return true
}

func (s *Server) helixCreateConduit(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	var body struct {
		ShardCount int `json:"shard_count"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ShardCount < 1 || body.ShardCount > 20000 {
		WriteError(w, http.StatusBadRequest, "shard_count must be between 1 and 20000")
		return
	}
	s.mu.Lock()
	if len(s.conduits) >= 5 {
		s.mu.Unlock()
		WriteError(w, http.StatusTooManyRequests, "The client already has 5 conduits")
		return
	}
	c := &Conduit{ID: newUUID()}
	resizeShards(c, body.ShardCount)
	s.conduits = append(s.conduits, c)
	out := conduitJSON(c)
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": []any{out}})
}

func (s *Server) helixListConduits(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	s.mu.Lock()
	data := []any{}
	for _, c := range s.conduits {
		data = append(data, conduitJSON(c))
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": data})
}

func (s *Server) helixUpdateConduit(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	var body struct {
		ID         string `json:"id"`
		ShardCount int    `json:"shard_count"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ID == "" || body.ShardCount < 1 || body.ShardCount > 20000 {
		WriteError(w, http.StatusBadRequest, "id and a shard_count between 1 and 20000 are required")
		return
	}
	s.mu.Lock()
	c := s.conduitLocked(body.ID)
	if c == nil {
		s.mu.Unlock()
		WriteError(w, http.StatusNotFound, "The conduit was not found")
		return
	}
	resizeShards(c, body.ShardCount)
	out := conduitJSON(c)
	s.mu.Unlock()
	WriteJSON(w, http.StatusOK, map[string]any{"data": []any{out}})
}

func (s *Server) helixDeleteConduit(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	id := r.URL.Query().Get("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.conduits {
		if c.ID == id {
			s.conduits = slices.Delete(s.conduits, i, i+1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	WriteError(w, http.StatusNotFound, "The conduit was not found")
}

func shardJSON(sh ConduitShard) map[string]any {
	transport := map[string]any{"method": sh.Method}
	switch sh.Method {
	case "websocket":
		transport["session_id"] = sh.SessionID
		transport["connected_at"] = sh.ConnectedAt.UTC().Format(time.RFC3339Nano)
	case "webhook":
		transport["callback"] = sh.Callback
	}
	return map[string]any{"id": sh.ID, "status": sh.Status, "transport": transport}
}

func (s *Server) helixListShards(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	q := r.URL.Query()
	start := 0
	if after := q.Get("after"); after != "" {
		n, err := strconv.Atoi(after)
		if err != nil || n < 0 {
			WriteError(w, http.StatusBadRequest, "The cursor in after is not valid")
			return
		}
		start = n
	}
	s.mu.Lock()
	c := s.conduitLocked(q.Get("conduit_id"))
	if c == nil {
		s.mu.Unlock()
		WriteError(w, http.StatusNotFound, "The conduit was not found")
		return
	}
	var matched []ConduitShard
	for _, sh := range c.Shards {
		if v := q.Get("status"); v == "" || sh.Status == v {
			matched = append(matched, sh)
		}
	}
	s.mu.Unlock()
	const page = 100
	data := []any{}
	for i := start; i < len(matched) && i < start+page; i++ {
		data = append(data, shardJSON(matched[i]))
	}
	pagination := map[string]any{}
	if start+page < len(matched) {
		pagination["cursor"] = strconv.Itoa(start + page)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "pagination": pagination})
}

func (s *Server) helixUpdateShards(w http.ResponseWriter, r *http.Request) {
	tok, ok := s.authorize(w, r)
	if !ok || !appOnly(w, tok) {
		return
	}
	var body struct {
		ConduitID string `json:"conduit_id"`
		Shards    []struct {
			ID        string        `json:"id"`
			Transport transportJSON `json:"transport"`
		} `json:"shards"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ConduitID == "" || len(body.Shards) == 0 {
		WriteError(w, http.StatusBadRequest, "conduit_id and shards are required")
		return
	}
	// Session checks go to the WebSocket part without s.mu held.
	live := map[string]bool{}
	for _, sh := range body.Shards {
		if sh.Transport.Method == "websocket" {
			live[sh.Transport.SessionID] = sh.Transport.SessionID != "" && s.sessionExists(sh.Transport.SessionID)
		}
	}
	s.mu.Lock()
	c := s.conduitLocked(body.ConduitID)
	if c == nil {
		s.mu.Unlock()
		WriteError(w, http.StatusNotFound, "The conduit was not found")
		return
	}
	data, errs := []any{}, []any{}
	for _, req := range body.Shards {
		idx, err := strconv.Atoi(req.ID)
		if err != nil || idx < 0 || idx >= len(c.Shards) {
			errs = append(errs, map[string]any{"id": req.ID, "message": "The shard id is outside the conduit's range", "code": "invalid_parameter"})
			continue
		}
		sh := &c.Shards[idx]
		switch req.Transport.Method {
		case "websocket":
			if !live[req.Transport.SessionID] {
				errs = append(errs, map[string]any{"id": req.ID, "message": "The websocket session is not connected", "code": "websocket_session_not_found"})
				continue
			}
			*sh = ConduitShard{ID: sh.ID, Status: "enabled", Method: "websocket", SessionID: req.Transport.SessionID, ConnectedAt: time.Now()}
		case "webhook":
			if req.Transport.Callback == "" || len(req.Transport.Secret) < 10 {
				errs = append(errs, map[string]any{"id": req.ID, "message": "The webhook transport needs a callback and a secret", "code": "invalid_parameter"})
				continue
			}
			*sh = ConduitShard{ID: sh.ID, Status: "enabled", Method: "webhook", Callback: req.Transport.Callback}
		default:
			errs = append(errs, map[string]any{"id": req.ID, "message": "transport.method must be websocket or webhook", "code": "invalid_parameter"})
			continue
		}
		data = append(data, shardJSON(*sh))
	}
	s.mu.Unlock()
	WriteJSON(w, http.StatusAccepted, map[string]any{"data": data, "errors": errs})
}

// ShardSession returns the websocket session a conduit shard is assigned to
// ("" when none), so the WebSocket part can route conduit notifications.
func (s *Server) ShardSession(conduitID, shardID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conduitLocked(conduitID); c != nil {
		for _, sh := range c.Shards {
			if sh.ID == shardID && sh.Method == "websocket" {
				return sh.SessionID
			}
		}
	}
	return ""
}

// newUUID makes a random version-4 UUID, the shape of Twitch's ids.
func newUUID() string {
	h := randomHex(16)
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[b[16]%4]
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}
