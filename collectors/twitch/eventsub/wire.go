// Package eventsub holds Twitch EventSub's wire formats (WebSocket frames and
// webhook bodies), the subscriptions WaddleBot makes, and the mapping of
// their events onto schemas.Event. It talks to nobody: the twitch package
// moves the bytes.
package eventsub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// WebSocket message types (metadata.message_type) and webhook message types
// (the Twitch-Eventsub-Message-Type header).
const (
	TypeSessionWelcome   = "session_welcome"
	TypeSessionKeepalive = "session_keepalive"
	TypeSessionReconnect = "session_reconnect"
	TypeNotification     = "notification"
	TypeRevocation       = "revocation"
	TypeVerification     = "webhook_callback_verification"
)

// Metadata is the envelope of every WebSocket message.
type Metadata struct {
	MessageID           string    `json:"message_id"`
	MessageType         string    `json:"message_type"`
	MessageTimestamp    time.Time `json:"message_timestamp"`
	SubscriptionType    string    `json:"subscription_type,omitempty"`
	SubscriptionVersion string    `json:"subscription_version,omitempty"`
}

// Session is a WebSocket session (session_welcome, session_reconnect).
type Session struct {
	ID                      string    `json:"id"`
	Status                  string    `json:"status"`
	KeepaliveTimeoutSeconds int       `json:"keepalive_timeout_seconds"`
	ReconnectURL            string    `json:"reconnect_url"`
	ConnectedAt             time.Time `json:"connected_at"`
}

// Transport is where Twitch delivers a subscription's notifications. Empty
// fields are left out when sending, since each method takes only its own.
type Transport struct {
	Method    string `json:"method"`
	Callback  string `json:"callback,omitempty"`
	Secret    string `json:"secret,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	ConduitID string `json:"conduit_id,omitempty"`
}

// Transport methods.
const (
	MethodWebhook   = "webhook"
	MethodWebSocket = "websocket"
	MethodConduit   = "conduit"
)

// Subscription is an EventSub subscription as Twitch reports it.
type Subscription struct {
	ID        string            `json:"id"`
	Status    string            `json:"status"`
	Type      string            `json:"type"`
	Version   string            `json:"version"`
	Condition map[string]string `json:"condition"`
	Transport Transport         `json:"transport"`
	CreatedAt time.Time         `json:"created_at"`
	Cost      int               `json:"cost"`
}

// Message is one WebSocket frame.
type Message struct {
	Metadata Metadata `json:"metadata"`
	Payload  Payload  `json:"payload"`
}

// Payload holds what a message type carries: a session (welcome,
// reconnect), a subscription (notification, revocation) and an event
// (notification).
type Payload struct {
	Session      *Session        `json:"session,omitempty"`
	Subscription *Subscription   `json:"subscription,omitempty"`
	Event        json.RawMessage `json:"event,omitempty"`
}

// ParseMessage reads a WebSocket frame and checks that it carries what its
// type needs, so callers can use the pointers of their type without checks.
// Unknown message types parse (Twitch may add some); callers ignore them.
func ParseMessage(b []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("eventsub: unable to parse message: %w", err)
	}
	md := m.Metadata
	if md.MessageID == "" || md.MessageType == "" {
		return nil, errors.New("eventsub: message has no message_id or message_type")
	}
	switch md.MessageType {
	case TypeSessionWelcome:
		if m.Payload.Session == nil || m.Payload.Session.ID == "" {
			return nil, errors.New("eventsub: session_welcome has no session id")
		}
	case TypeSessionReconnect:
		if m.Payload.Session == nil || m.Payload.Session.ReconnectURL == "" {
			return nil, errors.New("eventsub: session_reconnect has no reconnect_url")
		}
	case TypeNotification:
		if err := checkSubscription(m.Payload.Subscription); err != nil {
			return nil, err
		}
		if !isObject(m.Payload.Event) {
			return nil, errors.New("eventsub: notification has no event object")
		}
	case TypeRevocation:
		if err := checkSubscription(m.Payload.Subscription); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// Notification returns the notification a notification message carries.
func (m *Message) Notification() Notification {
	n := Notification{MessageID: m.Metadata.MessageID, Timestamp: m.Metadata.MessageTimestamp, Event: m.Payload.Event}
	if m.Payload.Subscription != nil {
		n.Subscription = *m.Payload.Subscription
	}
	return n
}

// WebhookBody is the JSON body of a webhook request: challenge only for
// webhook_callback_verification, event only for notification.
type WebhookBody struct {
	Challenge    string          `json:"challenge,omitempty"`
	Subscription Subscription    `json:"subscription"`
	Event        json.RawMessage `json:"event,omitempty"`
}

// ParseWebhookBody reads a webhook body of the given message type (the
// Twitch-Eventsub-Message-Type header).
func ParseWebhookBody(messageType string, b []byte) (*WebhookBody, error) {
	var w WebhookBody
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("eventsub: unable to parse webhook body: %w", err)
	}
	if err := checkSubscription(&w.Subscription); err != nil {
		return nil, err
	}
	switch messageType {
	case TypeVerification:
		if w.Challenge == "" {
			return nil, errors.New("eventsub: verification request has no challenge")
		}
	case TypeNotification:
		if !isObject(w.Event) {
			return nil, errors.New("eventsub: notification has no event object")
		}
	}
	return &w, nil
}

func checkSubscription(s *Subscription) error {
	if s == nil || s.ID == "" || s.Type == "" {
		return errors.New("eventsub: message has no subscription id or type")
	}
	return nil
}

func isObject(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// Notification is one event Twitch delivered, by whatever transport.
type Notification struct {
	// MessageID is the delivery's message id (metadata.message_id, or the
	// Twitch-Eventsub-Message-Id header); Twitch keeps it on redelivery.
	MessageID    string
	Timestamp    time.Time
	Subscription Subscription
	Event        json.RawMessage
}

// Sign is the signature Twitch puts in Twitch-Eventsub-Message-Signature:
// HMAC-SHA256 over message id, timestamp and raw body, keyed with the
// subscription's secret.
func Sign(secret, messageID, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(messageID))
	mac.Write([]byte(timestamp))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
