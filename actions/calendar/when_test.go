package calendar

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// saturday is 07:00 on Saturday 28 Nov 2026 in New York (12:00 UTC).
var saturday = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestParseWhen(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, ny) }
	cases := []struct {
		in      string
		want    time.Time
		rest    string
		problem string // a part of the refusal
	}{
		{in: "2026-12-05T18:00", want: at(2026, 12, 5, 18, 0)},
		{in: "2026-12-05t18:00:30 rest of it", want: at(2026, 12, 5, 18, 0).Add(30 * time.Second), rest: "rest of it"},
		{in: "2026-12-05 18:00 weekly bring snacks", want: at(2026, 12, 5, 18, 0), rest: "weekly bring snacks"},
		{in: "2026-12-05T18:00:00Z", want: time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)},
		{in: "2026-12-05T18:00:00+01:00 x", want: time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC), rest: "x"},
		{in: "today 21:30", want: at(2026, 11, 28, 21, 30)},
		{in: "TODAY 7:01", want: at(2026, 11, 28, 7, 1)},
		{in: "tomorrow 18:00 daily", want: at(2026, 11, 29, 18, 0), rest: "daily"},
		{in: "fri 20:00", want: at(2026, 12, 4, 20, 0)},
		{in: "Friday 20:00", want: at(2026, 12, 4, 20, 0)},
		{in: "sun 9:00", want: at(2026, 11, 29, 9, 0)},
		// Today is Saturday: later today, or next week once the time passed.
		{in: "sat 20:00", want: at(2026, 11, 28, 20, 0)},
		{in: "sat 07:00", want: at(2026, 12, 5, 7, 0)},
		{in: "", problem: "When does it start?"},
		{in: "someday", problem: `"someday" is not a date and time`},
		{in: "tomorrow", problem: `"tomorrow" needs a time of day after it`},
		{in: "fri 8pm", problem: `"fri" needs a time of day after it`},
		{in: "2026-12-05", problem: `"2026-12-05" needs a time of day after it`},
		{in: "2026-02-30 10:00", problem: `"2026-02-30 10:00" is not a date on the calendar.`},
		{in: "2026-13-01T10:00", problem: "is not a date on the calendar."},
		{in: "2026-12-05T24:00", problem: "is not a date and time"},
		{in: "2026-12-05T18:00:00+99:00", problem: "is not a date and time"},
		{in: "today 06:59", problem: "Sat 28 Nov 2026 06:59 EST has passed"},
		{in: "today 07:00", problem: "has passed"},
		{in: "2028-01-01 10:00", problem: "too far off"},
	}
	for _, c := range cases {
		got, rest, problem := parseWhen(c.in, saturday, ny)
		if c.problem != "" {
			if !strings.Contains(problem, c.problem) {
				t.Errorf("parseWhen(%q): problem %q, want it to contain %q", c.in, problem, c.problem)
			}
			continue
		}
		if problem != "" || !got.Equal(c.want) || rest != c.rest {
			t.Errorf("parseWhen(%q) = %s, %q, %q; want %s, %q", c.in, got, rest, problem, c.want, c.rest)
		}
	}
}

func TestOccurrenceAt(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	jan31 := time.Date(2027, 1, 31, 20, 0, 0, 0, ny)
	oct30 := time.Date(2026, 10, 30, 20, 0, 0, 0, ny) // before the switch to EST
	cases := []struct {
		anchor     time.Time
		k          int
		recurrence string
		want       time.Time
	}{
		{jan31, 1, "monthly", time.Date(2027, 2, 28, 20, 0, 0, 0, ny)},
		{jan31, 2, "monthly", time.Date(2027, 3, 31, 20, 0, 0, 0, ny)},
		{jan31, 1, "daily", time.Date(2027, 2, 1, 20, 0, 0, 0, ny)},
		{jan31, 0, "weekly", jan31},
		{oct30, 1, "weekly", time.Date(2026, 11, 6, 20, 0, 0, 0, ny)}, // still 20:00 local across DST
		{jan31, 5, "", jan31},
	}
	for _, c := range cases {
		if got := occurrenceAt(c.anchor, c.k, c.recurrence, ny); !got.Equal(c.want) {
			t.Errorf("occurrenceAt(%s, %d, %q) = %s, want %s", c.anchor, c.k, c.recurrence, got, c.want)
		}
	}
}

func TestSplitTitle(t *testing.T) {
	cases := []struct {
		in, title, rest string
		ok              bool
	}{
		{`"Movie night" fri 20:00`, "Movie night", "fri 20:00", true},
		{`“Movie night” fri 20:00`, "Movie night", "fri 20:00", true},
		{`"" fri`, "", "fri", true},
		{`Movie night fri 20:00`, "", "", false},
		{`"unterminated fri 20:00`, "", "", false},
	}
	for _, c := range cases {
		title, rest, ok := splitTitle(c.in)
		if title != c.title || rest != c.rest || ok != c.ok {
			t.Errorf("splitTitle(%q) = %q, %q, %v; want %q, %q, %v", c.in, title, rest, ok, c.title, c.rest, c.ok)
		}
	}
}

// FuzzParseWhen: any chat text gives either a start in the allowed window
// with the rest a tail of the input, or a refusal that fits a message.
func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"2026-12-05T18:00", "2026-12-05 18:00 weekly x", "tomorrow 18:00", "fri 20:00", "today 21:30",
		"2026-12-05T18:00:00+01:00", "2026-02-30 10:00", "sun", "", "   ", "\x00", "2026-12-05T18:00:00+99:99"} {
		f.Add(s)
	}
	ny, _ := time.LoadLocation("America/New_York")
	f.Fuzz(func(t *testing.T, in string) {
		start, rest, problem := parseWhen(in, saturday, ny)
		if problem != "" {
			if n := utf8.RuneCountInString(problem); n > 250 {
				t.Errorf("refusal of %q is %d characters", in, n)
			}
			return
		}
		if !start.After(saturday) || start.Sub(saturday) > MaxAhead {
			t.Errorf("parseWhen(%q) = %s, outside the allowed window", in, start)
		}
		if !strings.HasSuffix(in, rest) {
			t.Errorf("parseWhen(%q) rest %q is not a tail of the input", in, rest)
		}
	})
}
