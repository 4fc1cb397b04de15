package adapter

import (
	"sync"
	"time"

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
	m  map[string]*waiter
}

type waiter struct {
	ch      chan outcome
	claimed bool // the attempt ended and its outcome is on its way (claim)
}

// claimedGrace is how long a request whose time is up still waits for an
// outcome already on its way: the write that records it (milliseconds,
// normally). Past it the request answers "pending", and the outcome becomes
// a status event written on its own.
const claimedGrace = time.Second

func newWaiters() *waiters { return &waiters{m: map[string]*waiter{}} }

// add registers a waiter for mID before its job is stored.
func (w *waiters) add(mID string) <-chan outcome {
	ch := make(chan outcome, 1)
	w.mu.Lock()
	w.m[mID] = &waiter{ch: ch}
	w.mu.Unlock()
	return ch
}

// claim tells a waiting request that the attempt has ended and its outcome
// follows once recorded, so that the request does not give up in between:
// the job can then be completed without a status event, since the request
// will answer. False when nobody waits: the outcome must be reported as a
// status event, written with the completion.
func (w *waiters) claim(mID string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.m[mID]
	if ok {
		wt.claimed = true
	}
	return ok
}

// deliver hands the outcome to a waiting request; false when nobody waits,
// so the caller must report it another way.
func (w *waiters) deliver(mID string, o outcome) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.m[mID]
	if ok {
		delete(w.m, mID)
		wt.ch <- o
	}
	return ok
}

// abandon stops waiting. If the outcome arrived meanwhile it is returned;
// if it is on its way (claimed), it is waited for up to claimedGrace.
// Unclaimed, the waiter is removed under the same lock that saw it
// unclaimed, so a claim cannot slip in between and count on a request
// that is gone.
func (w *waiters) abandon(mID string, ch <-chan outcome) (outcome, bool) {
	w.mu.Lock()
	if wt, ok := w.m[mID]; ok && wt.claimed {
		w.mu.Unlock()
		timer := time.NewTimer(claimedGrace)
		defer timer.Stop()
		select {
		case o := <-ch:
			return o, true
		case <-timer.C:
		}
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	delete(w.m, mID)
	select {
	case o := <-ch:
		return o, true
	default:
		return outcome{}, false
	}
}
