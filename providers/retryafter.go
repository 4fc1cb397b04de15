package providers

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter bounds a Retry-After that is believed: a larger value is
// taken as this much (a lane's own retry_max cuts it further), and a
// number of seconds that large would overflow a time.Duration.
const MaxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3):
// delay-seconds, or an HTTP-date in any of its three formats, measured
// from now. A date already past is no wait (0, true). Anything else
// (empty, signed, fractional, neither a number nor a date) is ignored
// (0, false), so a garbled header never delays a retry.
func ParseRetryAfter(value string, now time.Time) (time.Duration, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if strings.Trim(value, "0123456789") == "" {
		secs, err := strconv.ParseInt(value, 10, 64)
		if err != nil || secs > int64(MaxRetryAfter/time.Second) { // only digits: err is overflow
			return MaxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), MaxRetryAfter), true
}

// ResponseRetryAfter is the Retry-After of a 429 or 503 answer, the two
// statuses for which the header asks a client to wait; 0 for any other
// answer or an unreadable header.
func ResponseRetryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0
	}
	d, _ := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	return d
}
