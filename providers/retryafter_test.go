package providers

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfterReadsSecondsAndHTTPDatesAndIgnoresGarbage(t *testing.T) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"120", 120 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"0", 0, true},
		{"Sat, 14 Mar 2026 15:10:26 GMT", time.Minute, true},         // IMF-fixdate
		{"Saturday, 14-Mar-26 15:09:56 GMT", 30 * time.Second, true}, // RFC 850
		{"Sat Mar 14 15:09:36 2026", 10 * time.Second, true},         // asctime
		{"Sat, 14 Mar 2026 15:00:00 GMT", 0, true},                   // already past: no wait
		{"90000", MaxRetryAfter, true},                               // over a day: a day
		{"99999999999999999999999", MaxRetryAfter, true},             // would overflow
		{"", 0, false},
		{"-5", 0, false},
		{"+5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"Sat, 14 Mar 2026", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseRetryAfter(c.value, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.value, got, ok, c.want, c.ok)
		}
	}
}

func TestResponseRetryAfterOnlyFor429And503(t *testing.T) {
	now := time.Now()
	answer := func(status int, retryAfter string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}}
	}
	cases := []struct {
		name string
		resp *http.Response
		want time.Duration
	}{
		{"429", answer(429, "3"), 3 * time.Second},
		{"503", answer(503, "4"), 4 * time.Second},
		{"500 does not ask to wait", answer(500, "3"), 0},
		{"200 does not ask to wait", answer(200, "3"), 0},
		{"429 with garbage", answer(429, "later"), 0},
		{"no answer", nil, 0},
	}
	for _, c := range cases {
		if got := ResponseRetryAfter(c.resp, now); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
