package shoutout

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/schemas"
)

// targetKind says what a `!so` argument names.
type targetKind int

const (
	// kindTwitchLogin is a Twitch login: looked up on Twitch, linked
	// elsewhere.
	kindTwitchLogin targetKind = iota + 1
	// kindMention is a Discord or Slack user mention, shown as typed so the
	// platform renders the user.
	kindMention
	// kindName is any other name typed off Twitch: shown as typed, no link.
	kindName
)

// target is what `!so <argument>` names.
type target struct {
	kind targetKind
	// login is the Twitch login, lower case (kindTwitchLogin).
	login string
	// userID is the platform user id a mention names (kindMention).
	userID string
	// shown is how the reply names the target (kindMention, kindName).
	shown string
}

// problem is why an argument names nobody; the caller words the reply.
type problem int

const (
	problemNone     problem = iota
	problemNoTarget         // no argument at all: show the usage
	problemNotLogin         // not a Twitch login where one is needed
	problemBadName          // off Twitch: not a name the bot will repeat
)

// MaxNameLength bounds a plain name typed off Twitch.
const MaxNameLength = 32

var (
	// Reference: Twitch logins are [a-z0-9_]{3,25}.
	loginRe = regexp.MustCompile(`^[a-z0-9_]{3,25}$`)
	// Discord user mentions: <@id> or the older nickname form <@!id>. Role
	// mentions (<@&id>) are not users and are refused.
	discordMentionRe = regexp.MustCompile(`^<@!?([0-9]{1,25})>$`)
	// Slack user mentions: <@U123> or <@U123|name>.
	slackMentionRe = regexp.MustCompile(`^<@([UW][A-Z0-9]{1,24})(\|[^<>|@]{0,80})?>$`)
)

// parseTarget reads the target of `!so` from the text after the command.
// Only the first word counts (`!so @bob thanks for the raid` shouts bob
// out). On Twitch the target must be a login; elsewhere it may also be a
// mention of that platform's user or a plain name. A name the bot would
// repeat is restricted to letters, digits, '_', '-' and '.', so a shoutout
// can never carry an @everyone or a Slack <!channel> into a channel.
func parseTarget(platform, argText string) (target, problem) {
	fields := strings.Fields(argText)
	if len(fields) == 0 {
		return target{}, problemNoTarget
	}
	word := fields[0]
	switch platform {
	case schemas.PlatformDiscord:
		if m := discordMentionRe.FindStringSubmatch(word); m != nil {
			return target{kind: kindMention, userID: m[1], shown: word}, problemNone
		}
	case schemas.PlatformSlack:
		if m := slackMentionRe.FindStringSubmatch(word); m != nil {
			return target{kind: kindMention, userID: m[1], shown: "<@" + m[1] + ">"}, problemNone
		}
	}
	// Punctuation typed after the name ("!so @bob!") is not part of it.
	word = strings.TrimRight(word, ",.!?;:")
	name, explicit := stripTwitchForm(word)
	if login := strings.ToLower(name); loginRe.MatchString(login) {
		return target{kind: kindTwitchLogin, login: login}, problemNone
	}
	if platform == schemas.PlatformTwitch || explicit {
		return target{}, problemNotLogin
	}
	if !safeName(name) {
		return target{}, problemBadName
	}
	return target{kind: kindName, shown: name}, problemNone
}

// stripTwitchForm takes off what may surround a Twitch login: a channel URL
// (https://www.twitch.tv/bob/), "twitch:bob", or a leading '@'. explicit
// reports that the word said it is a Twitch login.
func stripTwitchForm(word string) (name string, explicit bool) {
	lower := strings.ToLower(word)
	for _, scheme := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, scheme) {
			word, lower = word[len(scheme):], lower[len(scheme):]
			break
		}
	}
	for _, host := range []string{"www.", "m."} {
		if strings.HasPrefix(lower, host+"twitch.tv/") {
			word, lower = word[len(host):], lower[len(host):]
			break
		}
	}
	switch {
	case strings.HasPrefix(lower, "twitch.tv/"):
		return strings.TrimSuffix(word[len("twitch.tv/"):], "/"), true
	case strings.HasPrefix(lower, "twitch:"):
		return strings.TrimPrefix(word[len("twitch:"):], "@"), true
	}
	return strings.TrimPrefix(word, "@"), false
}

// safeName reports whether a plain name is one the bot will repeat.
func safeName(name string) bool {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-' && r != '.' {
			return false
		}
	}
	return true
}
