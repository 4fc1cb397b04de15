package testkit

import (
	"sync"
	"time"
)

// Expiries remembers the expiry each record of a test's fake
// providers.Records was put with (PutUntil), for tests to assert on.
type Expiries struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// Set records that ns/key expires at t.
func (e *Expiries) Set(ns, key string, t time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]time.Time{}
	}
	e.m[ns+"\x00"+key] = t
}

// Of is when ns/key expires; zero if it was never put with an expiry.
func (e *Expiries) Of(ns, key string) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m[ns+"\x00"+key]
}
