package importer

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openclaims/claims/internal/claims"
)

// dateFormat is one way a file writes its dates.
type dateFormat uint8

const (
	fmtMDY4 dateFormat = 1 << iota // M/D/YYYY (the kept copy; no zero padding)
	fmtDMY4                        // DD/MM/YYYY
	fmtYMD4                        // YYYY-MM-DD
	fmtDMY2                        // DD-MM-YY
	fmtMDY2                        // MM-DD-YY: never imported, only detected so it is not misread as DD-MM-YY

	allFormats = fmtMDY4 | fmtDMY4 | fmtYMD4 | fmtDMY2 | fmtMDY2
)

var formatNames = map[dateFormat]string{
	fmtMDY4: "M/D/YYYY", fmtDMY4: "DD/MM/YYYY", fmtYMD4: "YYYY-MM-DD", fmtDMY2: "DD-MM-YY", fmtMDY2: "MM-DD-YY",
}

func (f dateFormat) String() string {
	var names []string
	for _, one := range []dateFormat{fmtMDY4, fmtDMY4, fmtYMD4, fmtDMY2, fmtMDY2} {
		if f&one != 0 {
			names = append(names, formatNames[one])
		}
	}
	return strings.Join(names, " or ")
}

// supported reports whether f is a single format the importer reads.
func (f dateFormat) supported() bool {
	return f == fmtMDY4 || f == fmtDMY4 || f == fmtYMD4 || f == fmtDMY2
}

// pivotYY is the two-digit-year pivot: YY >= 69 is 19YY, YY < 69 is 20YY
// (the POSIX strptime %y rule, also used by Go's time package).
const pivotYY = 69

// splitDate splits s at sep into three runs of digits.
func splitDate(s string, sep byte) (a, b, c string, ok bool) {
	parts := strings.Split(s, string(sep))
	if len(parts) != 3 {
		return "", "", "", false
	}
	for _, p := range parts {
		if p == "" || len(p) > 4 {
			return "", "", "", false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return "", "", "", false
			}
		}
	}
	return parts[0], parts[1], parts[2], true
}

// civil returns the date y-m-d if it exists in the calendar.
func civil(y, m, d int) (claims.Date, bool) {
	if y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > 31 {
		return claims.Date{}, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d || int(t.Month()) != m {
		return claims.Date{}, false
	}
	return claims.NewDate(y, time.Month(m), d), true
}

// parseAs parses s in format f (one format).
func parseAs(s string, f dateFormat) (claims.Date, bool) {
	sep := byte('/')
	if f == fmtYMD4 || f == fmtDMY2 || f == fmtMDY2 {
		sep = '-'
	}
	a, b, c, ok := splitDate(s, sep)
	if !ok {
		return claims.Date{}, false
	}
	n := func(x string) int { v, _ := strconv.Atoi(x); return v }
	short := func(x string) bool { return len(x) <= 2 }
	switch f {
	case fmtMDY4:
		if short(a) && short(b) && len(c) == 4 {
			return civil(n(c), n(a), n(b))
		}
	case fmtDMY4:
		if short(a) && short(b) && len(c) == 4 {
			return civil(n(c), n(b), n(a))
		}
	case fmtYMD4:
		if len(a) == 4 && short(b) && short(c) {
			return civil(n(a), n(b), n(c))
		}
	case fmtDMY2, fmtMDY2:
		if short(a) && short(b) && len(c) == 2 {
			y := n(c)
			if y >= pivotYY {
				y += 1900
			} else {
				y += 2000
			}
			if f == fmtDMY2 {
				return civil(y, n(b), n(a))
			}
			return civil(y, n(a), n(b))
		}
	}
	return claims.Date{}, false
}

// formatsOf returns every format s is a valid date in.
func formatsOf(s string) dateFormat {
	var fs dateFormat
	for _, f := range []dateFormat{fmtMDY4, fmtDMY4, fmtYMD4, fmtDMY2, fmtMDY2} {
		if _, ok := parseAs(s, f); ok {
			fs |= f
		}
	}
	return fs
}

// dateDetector narrows the candidate formats of a file value by value.
type dateDetector struct {
	cand   dateFormat
	seen   int    // values that fit at least one format
	last   string // the value that eliminated the last candidates, for the error
	line   int
	before dateFormat // candidates before that value
}

func newDateDetector() dateDetector { return dateDetector{cand: allFormats} }

// add feeds one value; values that fit no format (missing "?", garbage) are
// ignored here and make their row skip later. It returns true once exactly
// one format is left.
func (d *dateDetector) add(v string, line int) bool {
	fs := formatsOf(v)
	if fs == 0 {
		return false
	}
	d.seen++
	if d.cand&fs == 0 {
		if d.last == "" {
			d.last, d.line, d.before = v, line, d.cand
		}
		d.cand = 0
		return true
	}
	d.cand &= fs
	return d.cand&(d.cand-1) == 0
}

// result returns the file's format or the error that refuses the file.
func (d *dateDetector) result(eof bool) (dateFormat, error) {
	switch {
	case d.seen == 0:
		return 0, fmt.Errorf("no date in policy_bind_date or incident_date is readable in any supported format (M/D/YYYY, DD/MM/YYYY, YYYY-MM-DD, DD-MM-YY)")
	case d.cand == 0:
		return 0, fmt.Errorf("the dates mix formats: line %d has %q, which is not %s like the dates before it; convert the file to one date format", d.line, d.last, d.before)
	case d.cand&(d.cand-1) != 0:
		scope := "in the whole file"
		if !eof {
			scope = fmt.Sprintf("in the first %d rows", maxPeekRows)
		}
		return 0, fmt.Errorf("the date format is ambiguous: every date %s reads as %s (no day above 12 tells day from month); refusing to guess, convert the dates to YYYY-MM-DD", scope, d.cand)
	case !d.cand.supported():
		return 0, fmt.Errorf("the dates are written %s, which is not supported (use M/D/YYYY, DD/MM/YYYY, YYYY-MM-DD or DD-MM-YY)", d.cand)
	}
	return d.cand, nil
}

// anniversary returns the anniversary of d in year y; 29 February falls on
// 28 February in common years.
func anniversary(d claims.Date, y int) claims.Date {
	day := d.Day()
	if d.Month() == time.February && day == 29 {
		if _, ok := civil(y, 2, 29); !ok {
			day = 28
		}
	}
	return claims.NewDate(y, d.Month(), day)
}

// policyPeriod returns the policy year that contains incident for a policy
// bound on bind: from the latest anniversary of bind on or before the
// incident (bind itself when the incident precedes it) to the day before
// the next anniversary.
func policyPeriod(bind, incident claims.Date) (eff, exp claims.Date) {
	eff = bind
	if !incident.Before(bind) {
		eff = anniversary(bind, incident.Year())
		if eff.After(incident) {
			eff = anniversary(bind, incident.Year()-1)
		}
	}
	exp = anniversary(bind, eff.Year()+1).AddDays(-1)
	return eff, exp
}

var monthNames = map[string]time.Month{}
var weekdayNames = map[string]time.Weekday{}

func init() {
	for m := time.January; m <= time.December; m++ {
		monthNames[strings.ToLower(m.String())] = m
		monthNames[strings.ToLower(m.String()[:3])] = m
	}
	for d := time.Sunday; d <= time.Saturday; d++ {
		weekdayNames[strings.ToLower(d.String())] = d
		weekdayNames[strings.ToLower(d.String()[:3])] = d
	}
}

func parseMonth(s string) (time.Month, bool) {
	m, ok := monthNames[strings.ToLower(strings.TrimSpace(s))]
	return m, ok
}

func parseWeekday(s string) (time.Weekday, bool) {
	d, ok := weekdayNames[strings.ToLower(strings.TrimSpace(s))]
	return d, ok
}

// nthWeekday returns the week-th wd of month m in year y ("the 2nd Monday of
// March 1994"), or the last wd of the month when the month has fewer.
func nthWeekday(y int, m time.Month, week int, wd time.Weekday) claims.Date {
	first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	off := (int(wd) - int(first.Weekday()) + 7) % 7
	t := first.AddDate(0, 0, off+7*(week-1))
	for t.Month() != m {
		t = t.AddDate(0, 0, -7)
	}
	return claims.DateOf(t)
}
