package ai

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/schemas"
)

// zwsp breaks a mention without changing what a reader sees.
const zwsp = "\u200b"

var (
	reFence      = regexp.MustCompile("(?m)^[ \t]*(```|~~~)[^\n]*$")
	reHeading    = regexp.MustCompile(`(?m)^[ \t]{0,3}#{1,6}[ \t]+`)
	reQuote      = regexp.MustCompile(`(?m)^[ \t]{0,3}>[ \t]?`)
	reImage      = regexp.MustCompile(`!\[([^\]\n]*)\]\(([^)\s]+)(?:\s+"[^"\n]*")?\)`)
	reLink       = regexp.MustCompile(`\[([^\]\n]+)\]\(([^)\s]+)(?:\s+"[^"\n]*")?\)`)
	reAutoLink   = regexp.MustCompile(`<(https?://[^>\s]+)>`)
	reBold       = regexp.MustCompile(`(\*\*|__)([^\s*_](?:[^\n]*?[^\s*_])?)(\*\*|__)`)
	reStrike     = regexp.MustCompile(`~~([^~\n]+)~~`)
	reItalicStar = regexp.MustCompile(`(^|[^\w*])\*([^\s*](?:[^*\n]*[^\s*])?)\*([^\w*]|$)`)
	reItalicUnd  = regexp.MustCompile(`(^|[^\w_])_([^\s_](?:[^_\n]*[^\s_])?)_([^\w_]|$)`)
	reInline     = regexp.MustCompile("`([^`\n]+)`")
	reRule       = regexp.MustCompile(`(?m)^[ \t]*([-*_][ \t]*){3,}$`)
	reBullet     = regexp.MustCompile(`(?m)^[ \t]*[*+][ \t]+`)
	reBlankLines = regexp.MustCompile(`\n{3,}`)
	reSpaces     = regexp.MustCompile(`[ \t]{2,}`)
	// Discord <@id>, <@!id>, <@&role>; Slack <@U…>, <!channel>, <!here>,
	// <!everyone>, <!subteam^…>.
	reAngleMention = regexp.MustCompile(`<([@!#])`)
	reMassMention  = regexp.MustCompile(`(?i)@(everyone|here|channel)\b`)
)

// rendersMarkdown reports whether a platform shows markdown as formatting.
// Discord does; Twitch shows it raw, Slack's mrkdwn reads it differently
// (single asterisks are bold, links are <url|text>), and the console is
// plain text.
func rendersMarkdown(platform string) bool { return platform == schemas.PlatformDiscord }

// StripMarkdown turns markdown into plain text: code fences and heading,
// quote and emphasis markers go, links become "text (url)".
func StripMarkdown(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = reFence.ReplaceAllString(s, "")
	s = reHeading.ReplaceAllString(s, "")
	s = reQuote.ReplaceAllString(s, "")
	s = reRule.ReplaceAllString(s, "")
	s = reImage.ReplaceAllString(s, "$1 ($2)")
	s = reLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := reLink.FindStringSubmatch(m)
		if sub[1] == sub[2] {
			return sub[2]
		}
		return sub[1] + " (" + sub[2] + ")"
	})
	s = reAutoLink.ReplaceAllString(s, "$1")
	s = reInline.ReplaceAllString(s, "$1")
	for range 2 { // nested emphasis (***x***) needs a second pass
		s = reBold.ReplaceAllString(s, "$2")
		s = reStrike.ReplaceAllString(s, "$1")
		s = reItalicStar.ReplaceAllString(s, "$1$2$3")
		s = reItalicUnd.ReplaceAllString(s, "$1$2$3")
	}
	s = reBullet.ReplaceAllString(s, "- ")
	return s
}

// Neutralize breaks mass mentions and user, role and channel mentions, so a
// model (or a prompt that steers it) can never ping a whole server.
func Neutralize(s string) string {
	s = reAngleMention.ReplaceAllString(s, "<"+zwsp+"$1")
	s = reMassMention.ReplaceAllString(s, "@"+zwsp+"$1")
	return s
}

// Shape makes a model's answer one chat message for platform: markdown
// stripped where it does not render, mentions neutralized, white space
// tidied (Twitch shows no line breaks), the prefix put before it, and the
// whole cut to limit characters at a sentence or word boundary.
func Shape(answer, platform, prefix string, limit int) string {
	s := strings.ToValidUTF8(answer, "")
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || !unicode.IsControl(r) {
			return r
		}
		return -1
	}, s)
	if !rendersMarkdown(platform) {
		s = StripMarkdown(s)
	}
	if platform == schemas.PlatformTwitch {
		s = strings.Join(strings.Fields(s), " ")
	} else {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			lines[i] = strings.TrimRightFunc(reSpaces.ReplaceAllString(l, " "), unicode.IsSpace)
		}
		s = reBlankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if prefix == "" && (strings.HasPrefix(s, "/") || strings.HasPrefix(s, "!") || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "#")) {
		// A reply that reads as a command would be run by the platform or
		// by a bot (this one included).
		s = zwsp + s
	}
	// Last, so that nothing above can join a mention back together.
	return Truncate(Neutralize(prefix+s), limit)
}

// Truncate cuts s to at most limit runes: at the last sentence end when one
// falls in the second half, else at the last word boundary with an
// ellipsis. A single word longer than the limit is cut inside.
func Truncate(s string, limit int) string {
	if limit < 1 || utf8.RuneCountInString(s) <= limit {
		return s
	}
	runes := []rune(s)
	// A sentence end: . ! ? (or …) followed by a space in the full text.
	best := -1
	for i, r := range runes[:limit] {
		if (r == '.' || r == '!' || r == '?' || r == '…') && i+1 < len(runes) && unicode.IsSpace(runes[i+1]) {
			best = i
		}
	}
	if best >= limit/3 {
		return strings.TrimSpace(string(runes[:best+1]))
	}
	// Room for the ellipsis.
	cutAt := limit - 1
	window := string(runes[:cutAt])
	// When the window already ends at a word's end, it stays whole.
	if !unicode.IsSpace(runes[cutAt]) {
		if i := strings.LastIndexFunc(window, unicode.IsSpace); i > 0 && utf8.RuneCountInString(window[:i]) >= cutAt/2 {
			window = strings.TrimRightFunc(window[:i], func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) && r != ')' })
		}
	}
	return strings.TrimRightFunc(window, unicode.IsSpace) + "…"
}
