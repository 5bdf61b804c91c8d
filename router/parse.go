package router

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// ExternalPrefix reaches community and external modules, whatever the
// community's own prefix is.
const ExternalPrefix = "#"

// maxCommandName bounds a command word; longer words are chat, not commands.
const maxCommandName = 32

// Command is a parsed command line.
type Command struct {
	// Prefix is what introduced the command ("!" or the community's own, or "#").
	Prefix string
	// Name is the command word, lower-cased, without prefix.
	Name string
	// Args are the arguments, split on white space; "double quotes" group
	// words, and a backslash inside quotes escapes the next character.
	Args []string
	// ArgText is the raw text after the command word, trimmed.
	ArgText string
}

// Parse reads a command from chat text if it starts with one of prefixes.
// Anything else (plain chat, a prefix alone, a too-long or odd command word)
// is not a command, cheaply.
func Parse(text string, prefixes ...string) (Command, bool) {
	text = strings.TrimLeftFunc(text, unicode.IsSpace)
	for _, p := range prefixes {
		if p == "" || !strings.HasPrefix(text, p) {
			continue
		}
		if c, ok := parseBody(text[len(p):]); ok {
			c.Prefix = p
			return c, true
		}
	}
	return Command{}, false
}

// ParseBare reads a command without a prefix: the text of a slash command
// (`/waddlebot ping` arrives as "ping").
func ParseBare(text string) (Command, bool) {
	return parseBody(strings.TrimLeftFunc(text, unicode.IsSpace))
}

func parseBody(body string) (Command, bool) {
	end := 0
	for end < len(body) {
		c := body[end]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			break
		}
		end++
	}
	if end == 0 || end > maxCommandName {
		return Command{}, false
	}
	// The word must end at white space or the end of the text: "!ping," or
	// "!5€" are chat.
	if end < len(body) {
		r, _ := utf8.DecodeRuneInString(body[end:])
		if !unicode.IsSpace(r) {
			return Command{}, false
		}
	}
	name := strings.ToLower(body[:end])
	if name[0] < 'a' || name[0] > 'z' {
		// "!1" or "!-" is chat ("!1 more round"), not a command.
		return Command{}, false
	}
	rest := strings.TrimSpace(body[end:])
	return Command{Name: name, Args: SplitArgs(rest), ArgText: rest}, true
}

// SplitArgs splits on white space, keeping "quoted text" together. An
// unterminated quote runs to the end of the text.
func SplitArgs(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case inQuote && r == '\\' && i < len(s):
			next, n := utf8.DecodeRuneInString(s[i:])
			i += n
			cur.WriteRune(next)
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && unicode.IsSpace(r):
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}
