package mailgun

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// A route forward is held in memory (up to maxForwardBytes, about twice
// that while it is parsed) before its signature can be checked, since the
// signature fields may come last; so what unsigned posts hold must not add
// up without end. forwardMemory is that bound, in this process (every
// Mailgun channel shares it): each forward is charged twice the bytes it
// has sent, as they arrive, and gives them back when it is answered.
//
// Charging bytes rather than counting requests is what keeps the route open
// under a slow-client attack: a connection that trickles its body holds
// only what it sent, so shutting forwards out takes uploading about
// forwardMemoryBytes/2 and holding it, where eight slots could be held by
// eight idle connections for http.read_timeout each, again and again, until
// Mailgun gave up on the real mail. A forward that finds no memory within
// forwardWait is answered 503, and Mailgun retries it.
var forwardMemory = newByteBudget(forwardMemoryBytes)

// forwardMemoryBytes: eight whole forwards at once, parsed.
const forwardMemoryBytes = 8 * 2 * maxForwardBytes

// forwardWaitDefault is how long a read of a forward waits for memory.
const forwardWaitDefault = 10 * time.Second

// errForwardBusy: the forward could not be charged within the wait.
var errForwardBusy = errors.New("mailgun: every byte of forward memory is in use")

// byteBudget is a counting semaphore of bytes whose waiters give up after
// a while.
type byteBudget struct {
	mu    sync.Mutex
	free  int64
	freed chan struct{} // closed (and replaced) whenever bytes come back
}

func newByteBudget(n int64) *byteBudget {
	return &byteBudget{free: n, freed: make(chan struct{})}
}

// take waits up to wait for n bytes; false when they did not free up in
// time or ctx ended first.
func (b *byteBudget) take(ctx context.Context, n int64, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		if b.free >= n {
			b.free -= n
			b.mu.Unlock()
			return true
		}
		freed := b.freed
		b.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		case <-timer.C:
			return false
		}
	}
}

// give returns n bytes and wakes every waiter to try again.
func (b *byteBudget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.free += n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// forwardBody is a forward's request body: it counts what was read and
// charges it to the budget (twice: the parse copies it).
type forwardBody struct {
	r       io.ReadCloser
	ctx     context.Context
	budget  *byteBudget
	wait    time.Duration
	n       int64 // bytes read
	held    int64 // bytes charged
	refused bool  // a read found no memory within wait
}

func (b *forwardBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if !b.budget.take(b.ctx, 2*int64(n), b.wait) {
			b.refused = true
			return 0, errForwardBusy
		}
		b.held += 2 * int64(n)
		b.n += int64(n)
	}
	return n, err
}

func (b *forwardBody) Close() error { return b.r.Close() }

// release gives back what the forward was charged, once it is answered.
func (b *forwardBody) release() {
	b.budget.give(b.held)
	b.held = 0
}
