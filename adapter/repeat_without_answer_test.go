package adapter

import (
	"net/http"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/store"
)

// Every /message is answered within outbound.wait + 1 s. A keyed repeat
// whose first answer was never stored (the server stopped before storing
// it, or the write failed) and whose first request is long over waits in
// firstAnswer for an answer that can no longer come, up to outbound.wait +
// 1 s counted from after its own store write and look-up, plus a poll: it
// always answers late, so a client that times out at the promised bound
// never gets an answer to its retry.
func TestAKeyedRepeatWithoutAStoredAnswerIsAnsweredAtOnce(t *testing.T) {
	const wait = 200 * time.Millisecond
	fake := &fakeProvider{}
	h := newHarnessOn(t, answerNotRemembered{store.NewMemory()}, func(c *Config) { c.Outbound.Wait = wait }, fake)
	if rec := h.postKeyed("k-lost", "hi"); rec.Code != http.StatusOK {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	start := time.Now()
	rec := h.postKeyed("k-lost", "hi")
	took := time.Since(start)
	if rec.Code != http.StatusOK {
		t.Fatalf("repeat: %d %s", rec.Code, rec.Body)
	}
	if took >= wait+time.Second {
		t.Fatalf("the repeat took %v, more than outbound.wait + 1 s (%v), though its first request ended long ago",
			took, wait+time.Second)
	}
	if n := fake.attemptCount(); n != 1 {
		t.Fatalf("%d attempts, want one", n)
	}
}
