package schemas

import (
	"fmt"
	"regexp"
	"strings"
)

// Stream names. They are part of the public contract: operators and external
// tools read them by name.
const (
	StreamEvents   = "WB_EVENTS"
	StreamCommands = "WB_COMMANDS"
	StreamReplies  = "WB_REPLIES"
	StreamResults  = "WB_RESULTS"
	StreamOverlay  = "WB_OVERLAY"
	StreamDLQ      = "WB_DLQ"
)

// Subject roots, one per stream or side path.
const (
	SubjectEvents   = "wb.events"
	SubjectCommands = "wb.cmd"
	SubjectReplies  = "wb.reply"
	SubjectResults  = "wb.result"
	SubjectOverlay  = "wb.overlay"
	SubjectDLQ      = "wb.dlq"
	SubjectAPI      = "wb.api"
	SubjectControl  = "wb.control"
)

// Control notices (core NATS, not stored): caches listen and drop what changed.
const (
	// ControlRegistry: the module catalogue changed.
	ControlRegistry = SubjectControl + ".registry"
	// ControlIdentity: platform accounts were linked to or unlinked from a
	// person.
	ControlIdentity = SubjectControl + ".identity"
	// ControlAll matches every control notice.
	ControlAll = SubjectControl + ".>"
)

// Platforms WaddleBot speaks to.
const (
	PlatformTwitch  = "twitch"
	PlatformDiscord = "discord"
	PlatformSlack   = "slack"
	PlatformConsole = "console"
)

// Platforms lists every platform a subject may name.
var Platforms = []string{PlatformTwitch, PlatformDiscord, PlatformSlack, PlatformConsole}

// ValidPlatform reports whether p is a platform WaddleBot knows.
func ValidPlatform(p string) bool {
	for _, q := range Platforms {
		if p == q {
			return true
		}
	}
	return false
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// ValidName reports whether s may name a module, a command, a route's kind or
// an API operation: lower-case, starting with a letter, at most 32 bytes. Such
// names are subject tokens and durable consumer names as they stand.
func ValidName(s string) bool { return nameRe.MatchString(s) }

// EventSubject is wb.events.<platform>.<channel>.<kind>.
func EventSubject(platform, channelID string, kind Kind) string {
	return SubjectEvents + "." + platform + "." + EncodeToken(channelID) + "." + string(kind)
}

// CommandSubject is wb.cmd.<module>.
func CommandSubject(module string) string { return SubjectCommands + "." + module }

// ReplySubject is wb.reply.<platform>.<channel>.
func ReplySubject(platform, channelID string) string {
	return SubjectReplies + "." + platform + "." + EncodeToken(channelID)
}

// ReplyFilter matches every reply for one platform: a sender's filter.
func ReplyFilter(platform string) string { return SubjectReplies + "." + platform + ".>" }

// ResultSubject is wb.result.<module>, where external modules publish.
func ResultSubject(module string) string { return SubjectResults + "." + module }

// OverlaySubject is wb.overlay.<community>.<source>.
func OverlaySubject(communityID, source string) string {
	return SubjectOverlay + "." + EncodeToken(communityID) + "." + EncodeToken(source)
}

// DLQSubject is wb.dlq.<stream>.
func DLQSubject(stream string) string { return SubjectDLQ + "." + stream }

// APISubject is wb.api.<platform>.<operation>, served request/reply by collectors.
func APISubject(platform, operation string) string {
	return SubjectAPI + "." + platform + "." + operation
}

// ControlCommunity announces that a community's settings, channels or module
// choices changed.
func ControlCommunity(communityID string) string {
	return SubjectControl + ".community." + EncodeToken(communityID)
}

// EventAddress is what an event subject names.
type EventAddress struct {
	Platform  string
	ChannelID string
	Kind      Kind
}

// ParseEventSubject reads wb.events.<platform>.<channel>.<kind>.
func ParseEventSubject(subject string) (EventAddress, error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 5 || parts[0]+"."+parts[1] != SubjectEvents {
		return EventAddress{}, fmt.Errorf("schemas: %q is not an event subject", subject)
	}
	ch, err := DecodeToken(parts[3])
	if err != nil {
		return EventAddress{}, fmt.Errorf("schemas: event subject %q: %w", subject, err)
	}
	a := EventAddress{Platform: parts[2], ChannelID: ch, Kind: Kind(parts[4])}
	if !ValidPlatform(a.Platform) {
		return EventAddress{}, fmt.Errorf("schemas: event subject %q: unknown platform", subject)
	}
	if !a.Kind.Valid() {
		return EventAddress{}, fmt.Errorf("schemas: event subject %q: unknown kind", subject)
	}
	return a, nil
}

// ParseReplySubject reads wb.reply.<platform>.<channel>.
func ParseReplySubject(subject string) (platform, channelID string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0]+"."+parts[1] != SubjectReplies {
		return "", "", fmt.Errorf("schemas: %q is not a reply subject", subject)
	}
	ch, err := DecodeToken(parts[3])
	if err != nil {
		return "", "", fmt.Errorf("schemas: reply subject %q: %w", subject, err)
	}
	return parts[2], ch, nil
}
