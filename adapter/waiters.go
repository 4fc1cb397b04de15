package adapter

import (
	"sync"

	"github.com/bonychat/bonychat-adapter/providers"
)

// outcome is how the first attempt of an outbound job ended.
type outcome struct {
	err     *providers.SendError // nil: the provider accepted the message
	pending bool                 // retryable failure: the job goes on in the background
}

// waiters lets /message wait for the first attempt of the job it stored.
// Exactly one side reports the outcome: the waiting request if it is still
// there, else the background status events.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan outcome
}

func newWaiters() *waiters { return &waiters{m: map[string]chan outcome{}} }

// add registers a waiter for mID before its job is stored.
func (w *waiters) add(mID string) <-chan outcome {
	ch := make(chan outcome, 1)
	w.mu.Lock()
	w.m[mID] = ch
	w.mu.Unlock()
	return ch
}

// deliver hands the outcome to a waiting request; false when nobody waits,
// so the caller must report it another way.
func (w *waiters) deliver(mID string, o outcome) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.m[mID]
	if ok {
		delete(w.m, mID)
		ch <- o
	}
	return ok
}

// abandon stops waiting. If the outcome arrived meanwhile it is returned.
func (w *waiters) abandon(mID string, ch <-chan outcome) (outcome, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, mID)
	select {
	case o := <-ch:
		return o, true
	default:
		return outcome{}, false
	}
}

// waiting reports whether a request waits for mID's outcome right now.
func (w *waiters) waiting(mID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.m[mID]
	return ok
}
