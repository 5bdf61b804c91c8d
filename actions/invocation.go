package actions

import (
	"strings"
	"unicode"

	"github.com/waddlebot/waddlebot/schemas"
)

// Helpers every module's handlers use to read an invocation.

// CommandPrefix is how the community's users start a command, for usage
// lines.
func CommandPrefix(inv *schemas.Invocation) string {
	if inv.Community.Prefix == "" {
		return "!"
	}
	return inv.Community.Prefix
}

// IsModerator reports whether the user who asked is a moderator or more.
func IsModerator(inv *schemas.Invocation) bool {
	return inv.Event.User.Highest() >= schemas.RoleRank(string(schemas.RoleModerator))
}

// ModeratorOrLabel reports whether the user is a moderator or more, or
// holds label (the community trusts them with that module's writes).
func ModeratorOrLabel(inv *schemas.Invocation, label string) bool {
	if IsModerator(inv) {
		return true
	}
	for _, l := range inv.Labels {
		if l == label {
			return true
		}
	}
	return false
}

// UserKey names the user who asked in created_by columns, as Schedule does.
func UserKey(inv *schemas.Invocation) string {
	return inv.Event.Platform + ":" + inv.Event.User.ID
}

// CutWord splits the first word off s.
func CutWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}
