package adapter

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
)

// A request whose time is up after its outcome was claimed waits for it;
// one that gave up first is not claimed, so the outcome becomes a status.
func TestWaitersHandOverAClaimedOutcomeOnly(t *testing.T) {
	w := newWaiters()
	done := w.add("m1")
	if !w.claim("m1") {
		t.Fatal("a waiting request was not claimed")
	}
	refused := &providers.SendError{Kind: providers.Permanent, Reason: "no"}
	go func() {
		time.Sleep(50 * time.Millisecond) // the completion being written
		w.deliver("m1", outcome{err: refused})
	}()
	if o, ok := w.abandon("m1", done); !ok || o.err != refused {
		t.Fatalf("abandon after a claim = %+v, %v; want the claimed outcome", o, ok)
	}

	done = w.add("m2")
	if _, ok := w.abandon("m2", done); ok {
		t.Fatal("an outcome nobody delivered was returned")
	}
	if w.claim("m2") || w.deliver("m2", outcome{}) {
		t.Fatal("a request that gave up was claimed or delivered to: its outcome would be lost")
	}
}

// Under any interleaving of a request's time running out with its
// attempt's end (claim, then deliver), the outcome is told exactly once:
// to the request, or, when the request is gone, by the attempt as a status
// event. Rounds run at once with random timings (and under -race in make
// test); a few deliver after claimedGrace, when the request must let go.
func TestWaitersTellEachOutcomeExactlyOnce(t *testing.T) {
	w := newWaiters()
	const rounds = 2000
	type round struct{ toldRequest, toldStatus bool }
	results := make([]round, rounds)
	jitter := func() time.Duration { return time.Duration(rand.IntN(300)) * time.Microsecond }
	var wg sync.WaitGroup
	for i := range rounds {
		mID := fmt.Sprintf("m%d", i)
		want := &providers.SendError{Kind: providers.Permanent, Reason: mID}
		done := w.add(mID)
		recording := jitter()
		if i%500 == 0 {
			recording = claimedGrace + 100*time.Millisecond
		}
		r := &results[i]
		wg.Add(2)
		go func() { // the request, as await does
			defer wg.Done()
			timer := time.NewTimer(jitter())
			defer timer.Stop()
			select {
			case o := <-done:
				r.toldRequest = o.err == want
			case <-timer.C:
				o, ok := w.abandon(mID, done)
				r.toldRequest = ok && o.err == want
			}
		}()
		go func() { // the attempt, as finishOutbound does
			defer wg.Done()
			time.Sleep(jitter())
			if !w.claim(mID) {
				r.toldStatus = true
				return
			}
			time.Sleep(recording)
			r.toldStatus = !w.deliver(mID, outcome{err: want})
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.toldRequest == r.toldStatus {
			t.Fatalf("round %d: told the request %v, reported as a status %v; want exactly one", i, r.toldRequest, r.toldStatus)
		}
	}
	if len(w.m) != 0 {
		t.Fatalf("%d waiters left behind", len(w.m))
	}
}
