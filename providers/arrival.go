package providers

import (
	"context"
	"sync"
)

// ArrivalOrder lets the webhook requests of one key (a contact) take a
// step in the order they arrived, however long each takes to get there:
// a contact's photo whose media are still downloading keeps the text sent
// after it from being stored, and shown, first. The zero value is ready.
type ArrivalOrder struct {
	mu   sync.Mutex
	last map[string]chan struct{} // closed when the latest arrival of a key is done
}

// Enter waits until every earlier arrival of key is done, and returns the
// done func the caller must call once its step is over. An error (ctx
// ended first) means the caller must not take the step; its place in the
// line is handed on once the arrivals before it are done.
func (a *ArrivalOrder) Enter(ctx context.Context, key string) (func(), error) {
	mine := make(chan struct{})
	a.mu.Lock()
	if a.last == nil {
		a.last = map[string]chan struct{}{}
	}
	before := a.last[key]
	a.last[key] = mine
	a.mu.Unlock()
	done := func() {
		a.mu.Lock()
		if a.last[key] == mine {
			delete(a.last, key)
		}
		a.mu.Unlock()
		close(mine)
	}
	if before == nil {
		return done, nil
	}
	select {
	case <-before:
		return done, nil
	case <-ctx.Done():
		go func() { <-before; done() }()
		return nil, ctx.Err()
	}
}
