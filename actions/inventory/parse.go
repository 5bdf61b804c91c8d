package inventory

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of what chat may store.
const (
	MaxNameLength  = 64
	MaxQuantity    = 100000
	MaxLabels      = 5
	MaxTermLength  = 64
	maxLoginLength = 64
)

var (
	labelRe = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	// numberish catches what the user meant as a quantity, even when it is
	// not a valid one ("0", "-2", "1.5", "1,000"), so it is refused as a
	// quantity instead of being taken for a label.
	numberish = regexp.MustCompile(`^[-+]?[0-9][0-9.,_]*$`)
	// A login as mentions write it: letters, digits, '_', '.', '-'; or a
	// platform's raw mention (<@123>, <@!123>).
	loginRe      = regexp.MustCompile(`^[\p{L}\p{N}_.\-]{1,64}$`)
	rawMentionRe = regexp.MustCompile(`^<@!?([A-Za-z0-9]{1,64})>$`)
)

// problem is a user's mistake, answered in chat.
type problem string

func (p problem) Error() string { return string(p) }

func problemf(format string, args ...any) problem { return problem(fmt.Sprintf(format, args...)) }

// hasControl reports control characters (NUL, new lines, tabs, escapes):
// names and terms are one line of visible text.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// itemName checks an item name as given in one argument. Outer white space
// is dropped, since quoting is only a way to group words.
func itemName(arg string) (string, error) {
	name := strings.TrimSpace(arg)
	switch {
	case hasControl(name):
		return "", problem("Item names can't contain control characters (new lines, tabs and the like).")
	case name == "":
		return "", problemf("Item names are 1 to %d characters.", MaxNameLength)
	case utf8.RuneCountInString(name) > MaxNameLength:
		return "", problemf("That item name is %d characters; at most %d.", utf8.RuneCountInString(name), MaxNameLength)
	}
	return name, nil
}

// quantity reads a unit count. ok is false when arg does not look like a
// number at all (it is then a label).
func quantity(arg string) (n int, ok bool, err error) {
	if !numberish.MatchString(arg) {
		return 0, false, nil
	}
	n, convErr := strconv.Atoi(arg)
	if convErr != nil || n < 1 || n > MaxQuantity || arg[0] == '+' {
		return 0, true, problemf("The quantity must be a whole number from 1 to 100,000 (not %q).", arg)
	}
	return n, true, nil
}

// labels checks labels, lower-cased, without repeats, in the order given.
func labels(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		l := strings.ToLower(a)
		if !labelRe.MatchString(l) {
			if hasControl(a) || utf8.RuneCountInString(a) > 40 {
				return nil, problem("Labels are 1 to 32 characters of a-z, 0-9, _ and -.")
			}
			return nil, problemf("%q is not a label: labels are 1 to 32 characters of a-z, 0-9, _ and -.", a)
		}
		if !contains(out, l) {
			out = append(out, l)
		}
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// user reads a mention: @login, a bare login or a raw platform mention. It
// returns the login as typed (without @) and its lower-case key.
func user(arg string) (name, key string, err error) {
	s := strings.TrimPrefix(arg, "@")
	if m := rawMentionRe.FindStringSubmatch(arg); m != nil {
		s = m[1]
	}
	if !loginRe.MatchString(s) {
		if hasControl(arg) || utf8.RuneCountInString(arg) > maxLoginLength+1 {
			return "", "", problem("That is not a user: name one as @login.")
		}
		return "", "", problemf("%q is not a user: name one as @login.", arg)
	}
	return s, strings.ToLower(s), nil
}

// isMention tells a user argument from an item name.
func isMention(arg string) bool {
	return strings.HasPrefix(arg, "@") || rawMentionRe.MatchString(arg)
}

// page reads a trailing page number; ok is false when arg is not one.
func page(arg string) (int, bool) {
	if arg == "" || len(arg) > 6 {
		return 0, false
	}
	for _, r := range arg {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(arg)
	return n, err == nil
}

// searchTerm checks a search term.
func searchTerm(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case hasControl(s):
		return "", problem("Search terms can't contain control characters.")
	case s == "":
		return "", problem("Search for at least 1 character.")
	case utf8.RuneCountInString(s) > MaxTermLength:
		return "", problemf("Search terms are at most %d characters.", MaxTermLength)
	}
	return s, nil
}

// likePattern escapes LIKE's wildcards, so a term is matched literally.
func likePattern(term string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(term) + "%"
}

// quoteArg writes an argument so the router's splitter reads it back as one.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '\\' }) {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
