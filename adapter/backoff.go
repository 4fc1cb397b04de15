package adapter

import (
	"math/rand/v2"
	"time"
)

// backoff is exponential backoff with full jitter: attempt n (1-based) waits a
// random time between lo and min(hi, lo·2^(n-1)). A provider's Retry-After
// raises the wait but never above hi, so one answer cannot stall a lane.
func backoff(lo, hi time.Duration, attempt int, retryAfter time.Duration) time.Duration {
	ceiling := hi
	if attempt-1 < 32 {
		if c := lo << (attempt - 1); c > 0 && c < hi {
			ceiling = c
		}
	}
	d := lo
	if ceiling > lo {
		d += rand.N(ceiling - lo + 1)
	}
	return min(max(d, retryAfter), hi)
}
