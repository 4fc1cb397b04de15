package adapter

import (
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
