package reputation

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/waddlebot/waddlebot/actions"
)

// target is a user named in a command.
type target struct {
	name  string // what accounts are looked up by: a login or an id, lower case
	shown string // as replies name them
}

var (
	// Platform mentions: Discord <@123> or <@!123>, Slack <@U123> or <@U123|bob>.
	mentionRe = regexp.MustCompile(`^<@!?([A-Za-z0-9]{1,64})(?:\|[^<>]{0,80})?>$`)
	// Logins: Twitch [a-z0-9_], console [A-Za-z0-9_-], Discord also '.'.
	loginRe = regexp.MustCompile(`^[\p{L}\p{N}_.\-]{1,64}$`)
)

// parseTarget reads `@bob`, `bob` or a mention; problem is the reply when
// arg names nobody.
func parseTarget(arg string) (target, string) {
	if m := mentionRe.FindStringSubmatch(arg); m != nil {
		return target{name: strings.ToLower(m[1]), shown: "<@" + m[1] + ">"}, ""
	}
	name := strings.TrimPrefix(arg, "@")
	if !loginRe.MatchString(name) {
		return target{}, fmt.Sprintf("%s is not a user: name one as @login or mention them.", quoted(arg))
	}
	return target{name: strings.ToLower(name), shown: name}, ""
}

// adjustment is a parsed `!rep adjust @user <±n> <reason>`.
type adjustment struct {
	who    target
	points int
	reason string
}

// missingParts is parseAdjust's problem when a part is missing: the caller
// answers with the usage, which knows the community's prefix.
const missingParts = "missing parts"

// parseAdjust reads what follows `adjust`: a user, a signed whole number of
// points (not zero, at most the whole range) and a reason; problem is the
// reply when the text is not one.
func parseAdjust(text string) (adjustment, string) {
	userArg, rest := actions.CutWord(text)
	amountArg, reason := actions.CutWord(rest)
	if userArg == "" || amountArg == "" || reason == "" {
		return adjustment{}, missingParts
	}
	who, problem := parseTarget(userArg)
	if problem != "" {
		return adjustment{}, problem
	}
	n, err := strconv.Atoi(amountArg)
	if err != nil || len(amountArg) > 4 {
		return adjustment{}, fmt.Sprintf("%s is not an amount: write a whole number of points like +25 or -10.", quoted(amountArg))
	}
	if n == 0 || n < -MaxAdjust || n > MaxAdjust {
		return adjustment{}, fmt.Sprintf("The amount must be from -%d to +%d, and not 0.", MaxAdjust, MaxAdjust)
	}
	if !utf8.ValidString(reason) {
		return adjustment{}, "The reason is not valid text."
	}
	if c := utf8.RuneCountInString(reason); c > MaxReason {
		return adjustment{}, fmt.Sprintf("That reason is %d characters long; the most is %d.", c, MaxReason)
	}
	for _, r := range reason {
		if unicode.IsControl(r) {
			return adjustment{}, fmt.Sprintf("The reason contains a control character (U+%04X); please send plain text.", r)
		}
	}
	return adjustment{who: who, points: n, reason: reason}, ""
}

// quoted shows a user's text back to them, shortened.
func quoted(s string) string { return strconv.Quote(actions.Clip(s, 30)) }
