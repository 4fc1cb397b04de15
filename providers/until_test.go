package providers

import (
	"testing"
	"time"
)

func TestUntilADateRunsThroughThatDayAndATimeUpToItsInstant(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		until Until
		now   string
		want  bool
	}{
		{"", "2999-01-01T00:00:00Z", false},
		{"2026-12-31", "2026-12-31T23:59:59Z", false},
		{"2026-12-31", "2027-01-01T00:00:00Z", true},
		{"2026-12-31", "2027-01-01T00:30:00+01:00", false}, // 23:30 UTC on the 31st
		{"2026-12-31T18:00:00+01:00", "2026-12-31T16:59:59Z", false},
		{"2026-12-31T18:00:00+01:00", "2026-12-31T17:00:00Z", true},
		{"tomorrow", "2999-01-01T00:00:00Z", false}, // invalid: refused by Problem, never passes
	}
	for _, tt := range tests {
		if got := tt.until.Passed(at(tt.now)); got != tt.want {
			t.Errorf("Until(%q).Passed(%s) = %v, want %v", tt.until, tt.now, got, tt.want)
		}
	}
}

func TestUntilProblemRefusesAnythingButADateOrAnRFC3339Time(t *testing.T) {
	for _, ok := range []Until{"", "2026-12-31", "2026-12-31T18:00:00Z", "2026-12-31T18:00:00+01:00"} {
		if p := ok.Problem(); p != "" {
			t.Errorf("Until(%q).Problem() = %q, want none", ok, p)
		}
	}
	for _, bad := range []Until{"tomorrow", "2026-12-31 18:00", "31/12/2026", "2026-02-30", "2026-12-31T18:00:00"} {
		if p := bad.Problem(); p == "" {
			t.Errorf("Until(%q).Problem() = none, want a problem", bad)
		}
	}
}
