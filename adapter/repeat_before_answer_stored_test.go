package adapter

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bonychat/bonychat-adapter/providers"
	"github.com/bonychat/bonychat-adapter/store"
)

// slowAnswerStore takes a while to store a request's answer (the SQLite
// writer busy with other writes).
type slowAnswerStore struct{ store.Store }

func (s slowAnswerStore) PutUntil(ctx context.Context, ns, key string, value []byte, expires time.Time) error {
	if ns == nsIdempotencyAnswer {
		time.Sleep(800 * time.Millisecond)
	}
	return s.Store.PutUntil(ctx, ns, key, value, expires)
}

// The first request times out at outbound.wait and answers 200; its job is
// then refused in the background. A keyed repeat arriving while the first
// answer is being stored (the waiter is gone, the answer not yet written)
// must wait for it and give the same 200, not answer from the job (400).
func TestAKeyedRepeatWhileTheFirstAnswerIsBeingStoredGetsTheSameAnswer(t *testing.T) {
	const wait = 200 * time.Millisecond
	fake := &fakeProvider{block: make(chan struct{}),
		sendErr: &providers.SendError{Kind: providers.Permanent, Reason: "not a mobile number"}}
	h := newHarnessOn(t, slowAnswerStore{store.NewMemory()}, func(c *Config) { c.Outbound.Wait = wait }, fake)
	first := make(chan *httptest.ResponseRecorder, 1)
	go func() { first <- h.postKeyed("k-race", "hi") }()
	time.Sleep(wait + 100*time.Millisecond) // the first request has given up waiting
	close(fake.block)                       // the send is refused
	deadline := time.Now().Add(2 * time.Second)
	for fake.attemptCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // its end recorded
	repeat := h.postKeyed("k-race", "hi")
	f := <-first
	if f.Code != repeat.Code {
		t.Fatalf("first request answered %d %s, its keyed repeat %d %s", f.Code, f.Body, repeat.Code, repeat.Body)
	}
}
