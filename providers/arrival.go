package providers

import (
	"context"
	"sync"
	"time"
)

// ArrivalOrder lets the webhook requests of one key (a contact) take a
// step in the order they arrived, however long each takes to get there:
// a contact's photo whose media are still downloading keeps the text sent
// after it from being stored, and shown, first. The zero value is ready.
type ArrivalOrder struct {
	mu   sync.Mutex
	last map[string]chan struct{} // closed when the latest arrival of a key is done
}

// Enter waits until the arrival of key before it is done, but no longer
// than maxWait (or ctx): the order is kept on a best-effort basis, since
// a provider that times out waiting for the answer may not post the
// message again. The caller takes its step after Enter returns and calls
// done once it is over.
func (a *ArrivalOrder) Enter(ctx context.Context, key string, maxWait time.Duration) (done func()) {
	mine := make(chan struct{})
	a.mu.Lock()
	if a.last == nil {
		a.last = map[string]chan struct{}{}
	}
	before := a.last[key]
	a.last[key] = mine
	a.mu.Unlock()
	if before != nil {
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
		select {
		case <-before:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	return func() {
		a.mu.Lock()
		if a.last[key] == mine {
			delete(a.last, key)
		}
		a.mu.Unlock()
		close(mine)
	}
}
