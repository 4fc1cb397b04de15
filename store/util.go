package store

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// neverMS is how an Expires of the zero time ("never expires") is stored.
const neverMS = math.MaxInt64

// toMS converts a time to UTC unix milliseconds; the zero time is 0.
func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// dueMS stores when a job is due: the zero time is 0 ("at any time"), any
// other time at least 1 ms (next_at 0 means "at any time", and a time before
// 1970 would be negative, which no ready query matches: it is long due).
func dueMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixMilli(), 1)
}

// retryMS stores when a retried job is due: as dueMS, but a zero time is
// "due at once" (1 ms), not 0, which means "due since it was created" and
// would order the lane by a creation time that a Revive may have moved past
// later jobs' (Lease takes those lanes by ID).
func retryMS(t time.Time) int64 { return max(dueMS(t), 1) }

// fromMS is the inverse of toMS: 0 is the zero time, anything else a UTC time.
func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// expiresToMS stores an expiry; the zero time means never.
func expiresToMS(t time.Time) int64 {
	if t.IsZero() {
		return neverMS
	}
	return t.UnixMilli()
}

// expiresFromMS is the inverse of expiresToMS.
func expiresFromMS(ms int64) time.Time {
	if ms == neverMS {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// truncMS rounds a time down to what the durable store keeps (UTC
// milliseconds), so Memory returns exactly what SQLite would.
func truncMS(t time.Time) time.Time { return fromMS(toMS(t)) }

// truncExpires is truncMS for expiry times (zero stays zero).
func truncExpires(t time.Time) time.Time { return expiresFromMS(expiresToMS(t)) }

// newToken returns a random lease token: 128 bits, hex.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return hex.EncodeToString(b[:])
}

// readySince is when a ready lane head became ready: a job due at once
// when it was enqueued, a job with a next_at (a retry, NotBefore) then, a
// leased job when its lease ran out.
func readySince(j Job) int64 {
	switch {
	case j.State == Leased:
		return toMS(j.LeaseUntil)
	case j.NextAt.IsZero():
		return toMS(j.CreatedAt)
	}
	return toMS(j.NextAt)
}

// compareReady orders ready lane heads for Lease: the one ready first goes
// first, so neither new messages nor retries that came due wait behind a
// stream of the other; then the older one.
func compareReady(a, b Job) int {
	return cmp.Or(cmp.Compare(readySince(a), readySince(b)), cmp.Compare(a.ID, b.ID))
}

// countMap is Count's result before counting: a zero for each of states,
// or for every state when none is given.
func countMap(states []State) (map[State]int, error) {
	if len(states) == 0 {
		states = []State{Pending, Leased, Done, Dead}
	}
	out := make(map[State]int, len(states))
	for _, st := range states {
		switch st {
		case Pending, Leased, Done, Dead:
			out[st] = 0
		default:
			return nil, fmt.Errorf("store: count: unknown state %q", st)
		}
	}
	return out, nil
}

// cloneBytes copies b; nil and empty both come back as nil.
func cloneBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// Placeholder styles for Rebind.
const (
	// BindQuestion keeps '?' placeholders (SQLite, MySQL).
	BindQuestion = iota
	// BindDollar numbers placeholders $1, $2, ... (PostgreSQL).
	BindDollar
)

// Rebind rewrites the '?' placeholders of a query for a placeholder style.
// Every query of the SQL stores is written with '?' and goes through Rebind
// exactly once, when it is prepared. Question marks inside '...' literals,
// "..." identifiers and -- comments are left alone.
func Rebind(style int, query string) string {
	if style != BindDollar || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch c {
		case '\'', '"':
			j := strings.IndexByte(query[i+1:], c)
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+2])
			i += j + 1
		case '-':
			if i+1 < len(query) && query[i+1] == '-' {
				j := strings.IndexByte(query[i:], '\n')
				if j < 0 {
					b.WriteString(query[i:])
					return b.String()
				}
				b.WriteString(query[i : i+j+1])
				i += j
				continue
			}
			b.WriteByte(c)
		case '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
