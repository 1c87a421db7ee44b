package claims

import (
	"fmt"
	"time"
)

// Date is a calendar date with no time and no zone: an incident date, a
// service date, a policy's effective date. It never shifts when a server or
// client changes time zone, because there is no instant inside it.
type Date struct {
	y int
	m time.Month
	d int
}

// NewDate returns the date y-m-d; it panics on an impossible date.
func NewDate(y int, m time.Month, d int) Date {
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || t.Month() != m || t.Day() != d {
		panic(fmt.Sprintf("claims: invalid date %04d-%02d-%02d", y, m, d))
	}
	return Date{y, m, d}
}

// ParseDate parses an ISO 8601 calendar date, "2006-01-02".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, fmt.Errorf("%q is not a date in YYYY-MM-DD form", s)
	}
	return Date{t.Year(), t.Month(), t.Day()}, nil
}

// DateOf returns the calendar date of t in t's own location.
func DateOf(t time.Time) Date { return Date{t.Year(), t.Month(), t.Day()} }

// IsZero reports whether d is the zero Date (unset).
func (d Date) IsZero() bool { return d.y == 0 && d.m == 0 && d.d == 0 }

// Year, Month and Day return the parts of d.
func (d Date) Year() int          { return d.y }
func (d Date) Month() time.Month  { return d.m }
func (d Date) Day() int           { return d.d }
func (d Date) time() time.Time    { return time.Date(d.y, d.m, d.d, 0, 0, 0, 0, time.UTC) }
func (d Date) Before(o Date) bool { return d.Compare(o) < 0 }
func (d Date) After(o Date) bool  { return d.Compare(o) > 0 }

// Compare returns -1, 0 or +1.
func (d Date) Compare(o Date) int { return d.time().Compare(o.time()) }

// AddDays returns d moved by n days.
func (d Date) AddDays(n int) Date { return DateOf(d.time().AddDate(0, 0, n)) }

// String formats d as YYYY-MM-DD ("" for the zero date).
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.y, d.m, d.d)
}

// MarshalText and UnmarshalText make Date travel as "YYYY-MM-DD".
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// DaysUntil returns the number of days from d to o (negative if o is
// earlier).
func (d Date) DaysUntil(o Date) int { return int(o.time().Sub(d.time()).Hours() / 24) }
