package providers

import "time"

// Until is an optional end date in the configuration, for a credential
// kept during a rotation (previous_token, previous_auth_token): the old
// one stops working by itself even if nobody edits the file again.
//
// It is "2026-12-31", meaning through the end of that day in UTC, or an
// RFC 3339 time such as "2026-12-31T18:00:00+01:00", meaning up to that
// instant. Empty means no end. It is kept as text (YAML would read an
// unquoted date as a timestamp and a quoted one as a string) and checked
// by Problem.
type Until string

const untilDate = "2006-01-02"

// Problem says what is wrong with u, or "" when it is empty or valid.
func (u Until) Problem() string {
	if _, err := u.end(); err != nil {
		return "must be a date such as 2026-12-31 or a time such as 2026-12-31T18:00:00Z"
	}
	return ""
}

// Passed reports whether now is at or after the end. An empty or invalid
// Until never passes (configuration checks refuse an invalid one).
func (u Until) Passed(now time.Time) bool {
	end, err := u.end()
	return err == nil && !end.IsZero() && !now.Before(end)
}

// end is the first instant that is no longer within u: zero for none.
func (u Until) end() (time.Time, error) {
	if u == "" {
		return time.Time{}, nil
	}
	if day, err := time.Parse(untilDate, string(u)); err == nil {
		return day.AddDate(0, 0, 1), nil
	}
	return time.Parse(time.RFC3339, string(u))
}
