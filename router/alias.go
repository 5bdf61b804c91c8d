package router

import (
	"strconv"
	"strings"

	"github.com/waddlebot/waddlebot/schemas"
)

// countMark stands for {count} until the router knows the invocation id the
// count is kept under; a NUL never comes out of chat text.
const countMark = "\x00count\x00"

// Expansion is what an alias's template became for one use.
type Expansion struct {
	Text     string // the command line, without prefix ("so bob"; "#weather berlin")
	HasCount bool   // {count} appears (as countMark)
}

// Expand fills an alias template with what the user typed. Variables:
// {user} (who typed it), {channel}, {args} (everything after the alias),
// {1}…{9} (one argument each), {count} (how often the alias ran, filled in
// later), each with an optional default: {1|nobody}. Anything else in braces
// stays as it is.
func Expand(template string, ev *schemas.Event, typed Command) Expansion {
	var b strings.Builder
	hasCount := false
	for i := 0; i < len(template); {
		open := strings.IndexByte(template[i:], '{')
		if open < 0 {
			b.WriteString(template[i:])
			break
		}
		b.WriteString(template[i : i+open])
		i += open
		end := strings.IndexByte(template[i:], '}')
		if end < 0 {
			b.WriteString(template[i:])
			break
		}
		name, def, hasDef := strings.Cut(template[i+1:i+end], "|")
		value, known := variable(name, ev, typed)
		switch {
		case name == "count":
			value, known, hasCount = countMark, true, true
		case !known:
			// Not ours: keep it, braces and all.
			b.WriteString(template[i : i+end+1])
			i += end + 1
			continue
		}
		if value == "" && hasDef {
			value = def
		}
		b.WriteString(value)
		i += end + 1
	}
	return Expansion{Text: strings.TrimSpace(b.String()), HasCount: hasCount}
}

func variable(name string, ev *schemas.Event, typed Command) (string, bool) {
	switch name {
	case "user":
		return ev.User.Name(), true
	case "channel":
		if ev.Channel.Name != "" {
			return ev.Channel.Name, true
		}
		return ev.Channel.ID, true
	case "args":
		return typed.ArgText, true
	}
	if len(name) == 1 && name[0] >= '1' && name[0] <= '9' {
		n, _ := strconv.Atoi(name)
		if n <= len(typed.Args) {
			return typed.Args[n-1], true
		}
		return "", true
	}
	return "", false
}

// parseExpansion reads an expanded alias as a command line: "#name …" for
// an external module's command, else a built-in command without prefix.
func parseExpansion(text string) (Command, bool) {
	if strings.HasPrefix(text, ExternalPrefix) {
		return Parse(text, ExternalPrefix)
	}
	c, ok := ParseBare(text)
	return c, ok
}

// fillCount puts the alias's run count where {count} stood.
func fillCount(c Command, count int64) Command {
	n := strconv.FormatInt(count, 10)
	c.ArgText = strings.ReplaceAll(c.ArgText, countMark, n)
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = strings.ReplaceAll(a, countMark, n)
	}
	c.Args = args
	return c
}
