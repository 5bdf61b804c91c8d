package calendar

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/actions"
)

// Bounds on when an event may start, named in the replies that enforce them.
const MaxAhead = 366 * 24 * time.Hour

var (
	clockRe = regexp.MustCompile(`^([01]?[0-9]|2[0-3]):([0-5][0-9])$`)
	dateRe  = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})$`)
	// isoRe is a date and a time joined by T, without a zone (the
	// community's applies); RFC 3339 with an offset is read separately.
	isoRe = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt]([01]?[0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?$`)
)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tues": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thur": time.Thursday, "thurs": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// whenHelp is appended to every refusal of a <when>, so the user sees what works.
const whenHelp = "write it like 2026-12-05T18:00, 2026-12-05 18:00, today 21:30, tomorrow 18:00 or fri 20:00"

// parseWhen reads the start of an event from the front of args, in loc, and
// returns it with the words after it. A weekday is the soonest such day
// whose time is still ahead (today, if it is that day and the time has not
// passed). problem, when not empty, is the reply explaining the refusal.
func parseWhen(args string, now time.Time, loc *time.Location) (start time.Time, rest, problem string) {
	first, after := actions.CutWord(args)
	if first == "" {
		return time.Time{}, "", "When does it start? " + capitalize(whenHelp) + "."
	}
	local := now.In(loc)
	lower := strings.ToLower(first)
	_, isWeekday := weekdays[lower]
	switch {
	case isoRe.MatchString(first):
		m := isoRe.FindStringSubmatch(first)
		sec := 0
		if m[6] != "" {
			sec, _ = strconv.Atoi(m[6])
		}
		start, problem = dateAt(m[1], m[2], m[3], m[4], m[5], sec, loc, first)
		rest = after
	case looksRFC3339(first):
		t, err := time.Parse(time.RFC3339, strings.ToUpper(first))
		if err != nil {
			return time.Time{}, "", fmt.Sprintf("%s is not a date and time; %s.", quoted(first), whenHelp)
		}
		start, rest = t, after
	case dateRe.MatchString(first):
		clock, more := actions.CutWord(after)
		m := dateRe.FindStringSubmatch(first)
		c := clockRe.FindStringSubmatch(clock)
		if c == nil {
			return time.Time{}, "", fmt.Sprintf("%q needs a time of day after it, like %s 18:00.", first, first) // first is a date: short
		}
		start, problem = dateAt(m[1], m[2], m[3], c[1], c[2], 0, loc, first+" "+clock)
		rest = more
	case lower == "today" || lower == "tomorrow" || isWeekday:
		clock, more := actions.CutWord(after)
		c := clockRe.FindStringSubmatch(clock)
		if c == nil {
			return time.Time{}, "", fmt.Sprintf("%q needs a time of day after it, like %s 18:00.", first, lower)
		}
		h, _ := strconv.Atoi(c[1])
		mi, _ := strconv.Atoi(c[2])
		at := func(days int) time.Time {
			return time.Date(local.Year(), local.Month(), local.Day()+days, h, mi, 0, 0, loc)
		}
		switch lower {
		case "today":
			start = at(0)
		case "tomorrow":
			start = at(1)
		default:
			days := (int(weekdays[lower]) - int(local.Weekday()) + 7) % 7
			start = at(days)
			if !start.After(now) {
				start = at(days + 7)
			}
		}
		rest = more
	default:
		return time.Time{}, "", fmt.Sprintf("%s is not a date and time; %s.", quoted(first), whenHelp)
	}
	if problem != "" {
		return time.Time{}, "", problem
	}
	switch {
	case !start.After(now):
		return time.Time{}, "", fmt.Sprintf("%s has passed; an event starts in the future.", start.In(loc).Format("Mon 2 Jan 2006 15:04 MST"))
	case start.Sub(now) > MaxAhead:
		return time.Time{}, "", "That is too far off: an event starts at most 366 days ahead."
	}
	return start, rest, ""
}

// looksRFC3339 tells a date-time with an explicit offset (2026-12-05T18:00:00+01:00, …Z).
func looksRFC3339(s string) bool {
	return len(s) > 19 && dateRe.MatchString(s[:10]) && (s[10] == 'T' || s[10] == 't')
}

// dateAt builds a local time from its parts, refusing dates that do not
// exist (2026-02-30) rather than letting them roll over.
func dateAt(y, mo, d, h, mi string, sec int, loc *time.Location, typed string) (time.Time, string) {
	year, _ := strconv.Atoi(y)
	month, _ := strconv.Atoi(mo)
	day, _ := strconv.Atoi(d)
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(mi)
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, loc)
	if month < 1 || month > 12 || t.Day() != day || int(t.Month()) != month {
		return time.Time{}, fmt.Sprintf("%s is not a date on the calendar.", quoted(typed))
	}
	return t, ""
}

// quoted shows a word the user typed in a refusal, escaped and bounded so
// that no input can stretch the reply past one message.
func quoted(s string) string { return actions.Clip(strconv.Quote(s), 40) }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
